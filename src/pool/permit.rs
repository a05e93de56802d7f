//! One pool (its semaphore, counters and permit ages), the permits it hands out, and the
//! settings and metric handles every pool of a layer shares.

use super::{
    adaptive::{Limiter, Outcome, Stamp},
    error::{EmptyPool, PoolFull},
    handle::PoolStats,
    semaphore::{lease::Leases, Semaphore},
    tracker::Tracker,
};
use crate::{
    classify::{Failure, FailureKind},
    internal::spare::{self, Spared},
    BoxError,
};
use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::time::Instant;

/// A wait this long never ends in practice: a longer `pool_timeout` saturates to "wait as
/// long as it takes" (tokio's own far future is 30 years), so that no deadline computed
/// from it can overflow an `Instant`.
pub(crate) const NEVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// When a wait begun at `now` times out after `timeout`: `None` for never (a timeout that
/// would overflow the clock).
#[inline]
pub(crate) fn deadline(now: Instant, timeout: Duration) -> Option<Instant> {
    now.checked_add(timeout.min(NEVER))
}

/// What a pool does with a call when all its permits are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `block=True`: wait, at most the timeout.
    Block(Option<Duration>),
    /// `block=False`: go through, counted as overflow.
    Overflow,
    /// Reject at once.
    FailFast,
}

/// Settings and metric handles shared by every pool of a layer.
pub(crate) struct Core {
    pub(crate) name: &'static str,
    pub(crate) maxsize: usize,
    pub(crate) mode: Mode,
    pub(crate) release_on_body_end: bool,
    pub(crate) leak_threshold: Option<Duration>,
    /// The adaptive limit's settings, shared by the pools' limiters.
    pub(crate) adaptive: Option<Arc<super::adaptive::Shared>>,
    /// Counters of the whole layer, evicted pools included.
    pub(crate) totals: Counts,
    /// Permits in use over all pools, and pools tracked: the gauges of a keyed layer.
    #[cfg(feature = "metrics")]
    pub(crate) keyed: Option<KeyedGauges>,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

/// Counted only while the gauges are live (a recorder took them): nothing else reads them.
#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
pub(crate) struct KeyedGauges {
    pub(crate) in_use: AtomicUsize,
    pub(crate) pools: AtomicUsize,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("maxsize", &self.maxsize)
            .field("mode", &self.mode)
            .field("release_on_body_end", &self.release_on_body_end)
            .field("leak_threshold", &self.leak_threshold)
            .finish_non_exhaustive()
    }
}

/// Event counters.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) overflowed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) leaked: AtomicU64,
}

impl Counts {
    fn add(&self, counter: fn(&Counts) -> &AtomicU64, n: u64) {
        counter(self).fetch_add(n, Ordering::Relaxed);
    }
}

/// One pool: `maxsize` permits.
pub(crate) struct Pool {
    pub(super) semaphore: Semaphore,
    /// Whether the gauges reach a recorder (`core.instruments.live()`, which never changes),
    /// kept here so that a permit's fast paths read one line of the pool, not the core's.
    #[cfg(feature = "metrics")]
    live: bool,
    /// Whether a permit's grant and return are just the semaphore's: no tracker, no
    /// adaptive limit, no gauges to publish per call (none, or the refresher publishes
    /// them: `metrics`' module docs). Read once per grant; the permit's word then says it
    /// for the return. With gauges, set by the first grant that sees the refresher run,
    /// unset when the refresher stops.
    plain: AtomicBool,
    /// Whether a permit's grant and return are the semaphore's and the adaptive limit's
    /// alone: an adaptive pool without tracker or gauges (fixed when the pool is made).
    /// Its permits take short paths of their own, out of line.
    adaptive_only: bool,
    overflowing: AtomicUsize,
    counts: Counts,
    tracker: Option<Tracker>,
    adaptive: Option<Limiter>,
    /// The pool's key as printed (`None` for a layer's only pool).
    pub(crate) key: Option<Box<str>>,
    pub(crate) core: Arc<Core>,
}

// A layer's only pool is referenced by its permits through the thread's spare (see
// `Pool::reference`). Not a per-host pool: its map evicts it only when the map holds
// its only reference.
crate::internal::spare::spare_slot!(Pool);

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("key", &self.key)
            .field("in_use", &self.in_use())
            .field("max", &self.core.maxsize)
            .field("waiting", &self.semaphore.waiting())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(core: Arc<Core>, key: Option<Box<str>>) -> Self {
        let adaptive = core.adaptive.as_ref().map(Limiter::new);
        #[cfg(feature = "metrics")]
        let live = core.instruments.live();
        #[cfg(not(feature = "metrics"))]
        let live = false;
        #[cfg(feature = "metrics")]
        let per_call = live && !core.instruments.refresh.running();
        #[cfg(not(feature = "metrics"))]
        let per_call = false;
        let fixed = adaptive.is_none() && core.leak_threshold.is_none();
        // With gauges, plain only from a grant that saw the refresher run (`granted_tracked`):
        // a pool made plain here while the refresher stops could be missed by its stop.
        let plain = fixed && !live;
        let adaptive_only = adaptive.is_some() && core.leak_threshold.is_none() && !live;
        let permits = core.maxsize - adaptive.as_ref().map_or(0, Limiter::parked);
        // A layer's only pool, shared by every thread that calls the layer, parks its free
        // permits per thread (see `semaphore::lease`); per-host pools are many and small.
        let semaphore = if fixed && !per_call && key.is_none() {
            Semaphore::with_leases(permits, Leases::per_machine())
        } else {
            Semaphore::new(permits)
        };
        Pool {
            plain: AtomicBool::new(plain),
            adaptive_only,
            semaphore,
            adaptive,
            #[cfg(feature = "metrics")]
            live,
            overflowing: AtomicUsize::new(0),
            counts: Counts::default(),
            tracker: core.leak_threshold.map(|_| Tracker::new(core.maxsize)),
            key,
            core,
        }
    }

    /// Calls holding a permit, or overflowing.
    pub(crate) fn in_use(&self) -> usize {
        let permits = self.core.maxsize - self.adaptive.as_ref().map_or(0, Limiter::parked);
        permits - self.semaphore.available().min(permits) + self.overflowing.load(Ordering::Relaxed)
    }

    /// A permit, if one is free and nobody waits (FIFO: no overtaking).
    #[inline]
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if self.semaphore.try_acquire() {
            Some(self.granted())
        } else {
            None
        }
    }

    /// [`try_acquire`](Self::try_acquire) with a reference the caller already holds (a
    /// per-host pool's upgraded last entry): the permit keeps it, instead of cloning one
    /// and the caller dropping its own (two writes fewer on the pool's reference count).
    #[inline(always)]
    pub(crate) fn try_acquire_owned(self: Arc<Self>) -> Result<Permit, Arc<Self>> {
        if !self.semaphore.try_acquire() {
            return Err(self);
        }
        if self.key.is_none() {
            // A layer's only pool: its permits go through the thread's spare slot.
            return Ok(self.granted());
        }
        let word = if self.plain.load(Ordering::Relaxed) {
            PLAIN
        } else {
            self.granted_word()
        };
        Ok(Permit::held(self, word))
    }

    /// Wraps a permit just taken from the semaphore.
    #[inline]
    pub(super) fn granted(self: &Arc<Self>) -> Permit {
        let word = if self.plain.load(Ordering::Relaxed) {
            PLAIN
        } else {
            self.granted_word()
        };
        Permit::held(self.reference(), word)
    }

    /// The word of a permit of a pool that is not [`plain`](Self::plain): its tracker slot
    /// (the leak check run when due), its adaptive stamp, the gauges updated. Out of line:
    /// a fixed pool's grant stays one test.
    #[inline(never)]
    fn granted_word(&self) -> u64 {
        if self.adaptive_only {
            // The stamp alone (always set for an adaptive pool).
            return Permit::word(UNTRACKED, Stamp::start(self.adaptive.as_ref()).bits());
        }
        self.granted_tracked()
    }

    /// [`granted_word`](Self::granted_word) for a pool with a tracker or gauges.
    #[inline(never)]
    fn granted_tracked(&self) -> u64 {
        // Gauges, and nothing else, to update: the refresher can do it instead.
        #[cfg(feature = "metrics")]
        if self.may_be_plain() && self.core.instruments.refresh.start() {
            self.plain.store(true, Ordering::SeqCst);
            // A refresher that stopped before this store could not set the pool back: read
            // its state after the store. Its stop writes the state, then the pool (both
            // `SeqCst`): either this reads the stop, or the stop's write to the pool comes
            // after this one.
            if !self.core.instruments.refresh.running() {
                self.plain.store(false, Ordering::SeqCst);
            }
        }
        let slot = match &self.tracker {
            Some(tracker) => self.track(tracker),
            None => UNTRACKED,
        };
        self.publish(1);
        let stamp = Stamp::start(self.adaptive.as_ref());
        if stamp.is_set() {
            Permit::word(slot, stamp.bits())
        } else {
            Permit::word(slot, RETURNED)
        }
    }

    /// A reference to this pool for a permit. A layer's only pool is called from the same
    /// threads again and again: its permits move one reference between a call and the
    /// thread's spare slot instead of writing the pool's shared reference count twice per
    /// call (the line other threads' calls write too). A per-host pool's permit clones:
    /// its map tells an idle pool by the map holding its only reference.
    #[inline]
    fn reference(self: &Arc<Self>) -> Arc<Self> {
        if self.key.is_none() {
            Pool::with_slot(|slot| spare::take(slot, self)).unwrap_or_else(|_| Arc::clone(self))
        } else {
            Arc::clone(self)
        }
    }

    /// Gives back a permit's reference: to the thread's spare slot for a layer's only pool.
    #[inline]
    fn unreference(self: Arc<Self>) {
        if self.key.is_none() {
            // While the thread exits, its slot is gone: the reference is dropped instead.
            let _ = Pool::with_slot(move |slot| slot.set(Some(self)));
        }
    }

    /// Stamps a new permit, and runs the leak check when one is due.
    fn track(&self, tracker: &Tracker) -> u32 {
        let now = Instant::now();
        let slot = tracker.claim(now);
        if let Some(threshold) = self.core.leak_threshold {
            if tracker.check_due(now, threshold / 10) {
                self.check(tracker, now);
            }
        }
        slot
    }

    /// Lets a call through over `maxsize` (`block=False`).
    pub(crate) fn overflow(self: &Arc<Self>) -> Permit {
        self.overflowing.fetch_add(1, Ordering::Relaxed);
        self.count(|c| &c.overflowed);
        #[cfg(feature = "metrics")]
        self.core.instruments.overflow.increment(1);
        self.publish(1);
        Permit::held(self.reference(), Permit::word(OVERFLOW, RETURNED))
    }

    /// The error of a call that waited `pool_timeout` in vain (counted here).
    pub(crate) fn timed_out(&self, waited: Duration) -> BoxError {
        self.count(|c| &c.timed_out);
        if let Some(limiter) = &self.adaptive {
            limiter.timed_out(&self.semaphore, || self.in_use() + self.semaphore.waiting());
        }
        #[cfg(feature = "metrics")]
        self.core.instruments.timeouts.increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::pool",
            name = self.core.name,
            pool = self.key.as_deref(),
            maxsize = self.core.maxsize,
            waited_ms = waited.as_secs_f64() * 1e3,
            "pool timeout: no permit within pool_timeout"
        );
        Box::new(Failure::new(
            FailureKind::PoolTimeout,
            EmptyPool::new(waited, self.core.maxsize),
        ))
    }

    /// The error of a call a full pool rejects (counted here).
    pub(crate) fn rejected(&self) -> BoxError {
        self.count(|c| &c.rejected);
        #[cfg(feature = "metrics")]
        self.core.instruments.rejected.increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::pool",
            name = self.core.name,
            pool = self.key.as_deref(),
            maxsize = self.core.maxsize,
            "pool full: call rejected"
        );
        Box::new(Failure::new(
            FailureKind::PoolFull,
            PoolFull::new(self.core.maxsize),
        ))
    }

    fn count(&self, counter: fn(&Counts) -> &AtomicU64) {
        self.counts.add(counter, 1);
        self.core.totals.add(counter, 1);
    }

    /// Runs a leak check if permits are tracked and one is due: called when a call finds
    /// the pool full, which is when leaked permits start to hurt (and a call that gets a
    /// permit checks too, in `track`).
    pub(crate) fn on_full(&self) {
        let (Some(tracker), Some(threshold)) = (&self.tracker, self.core.leak_threshold) else {
            return;
        };
        let now = Instant::now();
        if tracker.check_due(now, threshold / 10) {
            self.check(tracker, now);
        }
    }

    /// Scans the permit ages, reporting new leaks; returns the oldest age.
    fn check(&self, tracker: &Tracker, now: Instant) -> Option<Duration> {
        let scan = tracker.scan(now, self.core.leak_threshold);
        if !scan.leaked.is_empty() {
            let n = scan.leaked.len() as u64;
            self.counts.add(|c| &c.leaked, n);
            self.core.totals.add(|c| &c.leaked, n);
            #[cfg(feature = "metrics")]
            self.core.instruments.leaks.increment(n);
        }
        #[cfg(feature = "tracing")]
        for held in &scan.leaked {
            tracing::warn!(
                target: "tower_fortify::pool",
                name = self.core.name,
                pool = self.key.as_deref(),
                held_ms = held.as_secs_f64() * 1e3,
                leak_threshold_ms = self.core.leak_threshold.unwrap_or_default().as_secs_f64() * 1e3,
                "pool permit held longer than leak_threshold: possible leak \
                 (a response body neither read to its end nor dropped)"
            );
        }
        scan.oldest
    }

    /// This pool's figures (runs a leak check).
    pub(crate) fn stats(&self) -> PoolStats {
        let oldest = self
            .tracker
            .as_ref()
            .and_then(|tracker| self.check(tracker, Instant::now()));
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PoolStats {
            key: self.key.as_deref().map(str::to_owned),
            in_use: self.in_use(),
            max: self.core.maxsize,
            limit: self
                .adaptive
                .as_ref()
                .map_or(self.core.maxsize, Limiter::limit),
            waiting: self.semaphore.waiting(),
            overflowing: self.overflowing.load(Ordering::Relaxed),
            overflowed: load(&self.counts.overflowed),
            timed_out: load(&self.counts.timed_out),
            rejected: load(&self.counts.rejected),
            leaked: load(&self.counts.leaked),
            oldest_in_use: oldest,
        }
    }

    /// Updates the gauges after a permit was taken (`+1`), given back (`-1`), or handed to
    /// a waiter that left without taking it (`0`). Nothing at all when no recorder took
    /// the gauges.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn publish(&self, delta: isize) {
        #[cfg(feature = "metrics")]
        if self.live {
            self.publish_live(delta);
        }
    }

    #[cfg(feature = "metrics")]
    #[inline(never)]
    fn publish_live(&self, delta: isize) {
        // While the refresher runs, it publishes (a call's value, counted without the
        // plain permits, would be wrong until its next round).
        let refreshed = self.core.instruments.refresh.running();
        match &self.core.keyed {
            None => {
                if refreshed {
                    return;
                }
                let max = self.core.maxsize;
                self.core.instruments.publish(|| (self.in_use(), max));
            }
            Some(keyed) => {
                match delta {
                    1 => {
                        keyed.in_use.fetch_add(1, Ordering::Relaxed);
                    }
                    -1 => {
                        keyed.in_use.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                if !refreshed {
                    self.core.publish_keyed();
                }
            }
        }
    }

    /// Whether the pool's permits would be plain but for gauges published per call.
    #[cfg(feature = "metrics")]
    fn may_be_plain(&self) -> bool {
        self.live && self.tracker.is_none() && self.adaptive.is_none()
    }

    /// The refresher stopped: this pool's calls publish the gauges again.
    #[cfg(feature = "metrics")]
    pub(crate) fn gauges_per_call(&self) {
        if self.may_be_plain() {
            self.plain.store(false, Ordering::SeqCst);
        }
    }

    /// Gives back a permit that is not [`PLAIN`]: tracked, overflowing, of an adaptive
    /// limit, or with gauges to update.
    #[inline(never)]
    fn release(&self, slot: u32) {
        if self.adaptive_only {
            // Untracked, never overflowing (an adaptive pool does not overflow).
            self.give_back();
        } else {
            self.release_tracked(slot);
        }
    }

    /// Gives a permit back to the semaphore, or to the adaptive limit if it keeps it.
    #[inline]
    fn give_back(&self) {
        if !self.adaptive.as_ref().is_some_and(Limiter::park) {
            self.semaphore.release();
        }
    }

    /// [`release`](Self::release) for a pool with a tracker or gauges, or an overflowing
    /// call.
    #[inline(never)]
    fn release_tracked(&self, slot: u32) {
        if slot == OVERFLOW {
            self.overflowing.fetch_sub(1, Ordering::Relaxed);
            // urllib3 logs this when an extra connection comes back to a full pool.
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "tower_fortify::pool",
                name = self.core.name,
                pool = self.key.as_deref(),
                maxsize = self.core.maxsize,
                "Connection pool is full, discarding connection"
            );
        } else {
            // The slot is freed before the permit, so that every holder finds one.
            #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
            if let Some(held) = self.tracker.as_ref().and_then(|t| t.free(slot)) {
                #[cfg(feature = "tracing")]
                tracing::info!(
                    target: "tower_fortify::pool",
                    name = self.core.name,
                    pool = self.key.as_deref(),
                    held_ms = held.as_secs_f64() * 1e3,
                    "a permit reported as leaked was given back"
                );
            }
            self.give_back();
        }
        self.publish(-1);
    }
}

impl Core {
    /// Publishes the in-use and utilisation gauges from `pools`, every pool of the layer
    /// (the refresher, a snapshot).
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_totals(&self, pools: &[Arc<Pool>]) {
        if !self.instruments.live() {
            return;
        }
        let in_use = pools.iter().map(|pool| pool.in_use()).sum();
        let max = match &self.keyed {
            None => self.maxsize,
            Some(_) => self.maxsize.saturating_mul(pools.len()),
        };
        self.instruments.publish(|| (in_use, max));
    }

    /// Gauges of a keyed layer: `in_use` over all pools, out of `maxsize` per pool.
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_keyed(&self) {
        let Some(keyed) = &self.keyed else { return };
        self.instruments.publish(|| {
            (
                keyed.in_use.load(Ordering::Relaxed),
                self.maxsize
                    .saturating_mul(keyed.pools.load(Ordering::Relaxed)),
            )
        });
    }

    /// A keyed layer's count of pools changed: publishes it as `pools()` reads it, and again
    /// until a reading after the publication agrees, so that of racing changes (published
    /// after their map's lock is released) the last publication has the last count.
    #[cfg(feature = "metrics")]
    pub(crate) fn pools_changed(&self, pools: impl Fn() -> usize) {
        let Some(keyed) = &self.keyed else { return };
        if !self.instruments.live() {
            return;
        }
        loop {
            let count = pools();
            keyed.pools.store(count, Ordering::Relaxed);
            self.instruments.set_max(self.maxsize.saturating_mul(count));
            self.publish_keyed();
            if pools() == count {
                return;
            }
        }
    }
}

/// The slot of a permit whose age is not tracked (no `leak_threshold`).
const UNTRACKED: u32 = u32::MAX;
/// The slot of a call over `maxsize` (`block=False`): it holds no permit of the semaphore.
/// Tracked slots are below `MAX_TRACKED`.
const OVERFLOW: u32 = u32::MAX - 1;
/// The word of a permit of a [`plain`](Pool::plain) pool: untracked, nothing else to do
/// when it comes back than the semaphore's release.
const PLAIN: u64 = (UNTRACKED as u64) << 32;
/// The low half of a word whose return is not plain and that has no adaptive stamp (or
/// no more: a [`Stamp`] is odd, and recorded once): even, and not zero, so that the word
/// is never [`PLAIN`].
const RETURNED: u32 = 2;

/// A call's place in a pool, or none (taken, given back): given back when dropped.
///
/// Two words, each always written whole: the pool (none is the null niche of its `Arc`,
/// so holding a permit or not costs no third word), and the permit's slot in its tracker
/// (or `UNTRACKED`, or `OVERFLOW`) with the adaptive limit's start stamp. Moving it copies
/// two words; a narrower field read back across a wider load (an unaligned enum once, a
/// 16-byte stamp written as its 4-byte niche after) made every call stall on store
/// forwarding.
///
/// The word tells its return: [`PLAIN`] is the semaphore's release alone, anything else
/// goes through [`Pool::release`]. Its low half is a [`Stamp`] (odd) until the call's end
/// is recorded, then [`RETURNED`]; the high half is the slot. The stamp is the low half so
/// that the test every response makes (its lowest bit) reads the word's first byte, where
/// a store of the whole word forwards to it on every processor.
pub(crate) struct Permit(Option<Held>);

struct Held {
    pool: Arc<Pool>,
    word: u64,
}

impl Permit {
    /// No permit.
    pub(crate) const NONE: Permit = Permit(None);

    #[inline]
    fn held(pool: Arc<Pool>, word: u64) -> Self {
        Permit(Some(Held { pool, word }))
    }

    /// Whether it holds a permit.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Gives the permit back now, leaving none in its place. Out of line, for the paths a
    /// response's poll does not take (an error, a body already at its end, no release on
    /// body end): inline, even as a test and a call, they changed how the poll around them
    /// was compiled (one copy more of the response, callgrind).
    #[inline(never)]
    pub(crate) fn give_back(&mut self) {
        *self = Permit::NONE;
    }

    /// The permit, leaving none in its place.
    #[inline]
    pub(crate) fn take(&mut self) -> Permit {
        Permit(self.0.take())
    }

    /// Records how the call ended, for an adaptive limit (once; a permit dropped without
    /// a record, as by a cancelled call, records nothing). Only a stamped permit (of an
    /// adaptive pool) goes further than one test of its word, and only a timed call or a
    /// failure further than a second test: the rest is out of line, so that a fixed pool's
    /// response future stays as small as it was without the limit.
    #[inline]
    pub(crate) fn record(&mut self, outcome: impl FnOnce() -> Outcome) {
        if let Some(held) = &mut self.0 {
            let stamp = Stamp::from_bits(held.word as u32);
            if stamp.is_set() {
                let outcome = outcome();
                if stamp.records(outcome) {
                    held.record(outcome);
                } else {
                    held.word = Permit::word((held.word >> 32) as u32, RETURNED);
                }
            }
        }
    }

    #[inline]
    const fn word(slot: u32, stamp: u32) -> u64 {
        (slot as u64) << 32 | stamp as u64
    }
}

impl Held {
    #[inline(never)]
    fn record(&mut self, outcome: Outcome) {
        let mut stamp = Stamp::from_bits(self.word as u32);
        let pool = &self.pool;
        if let Some(limiter) = &pool.adaptive {
            limiter.record(&mut stamp, outcome, &pool.semaphore, || {
                pool.in_use() + pool.semaphore.waiting()
            });
        }
        self.word = Permit::word((self.word >> 32) as u32, RETURNED);
    }

    /// Gives the permit back. Out of line: a dropped permit that holds nothing (taken into a
    /// body, or given back already: most drops of a call) stays one test in its owner's
    /// drop, not a call.
    #[inline(never)]
    fn release(self) {
        let Held { pool, word } = self;
        if word == PLAIN {
            pool.semaphore.release();
        } else {
            pool.release((word >> 32) as u32);
        }
        pool.unreference();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Permit(None)"),
            Some(held) => f
                .debug_struct("Permit")
                .field("pool", &held.pool.key)
                .field("overflow", &((held.word >> 32) as u32 == OVERFLOW))
                .finish(),
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if let Some(held) = self.0.take() {
            held.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held or not, a permit is two words (its `Option` lives in the pool reference's
    /// niche), so that moving one never copies a third word or a narrower tag.
    #[test]
    fn a_permit_is_two_words_held_or_not() {
        assert_eq!(
            std::mem::size_of::<Permit>(),
            2 * std::mem::size_of::<usize>()
        );
        assert_eq!(std::mem::size_of::<Held>(), std::mem::size_of::<Permit>());
    }

    /// A plain word is neither a tracked slot, an overflow, nor a stamped or recorded
    /// adaptive permit's word.
    #[test]
    fn only_an_untracked_unstamped_word_is_plain() {
        assert_ne!(Permit::word(0, 0), PLAIN);
        assert_ne!(Permit::word(OVERFLOW, RETURNED), PLAIN);
        assert_ne!(Permit::word(UNTRACKED, RETURNED), PLAIN);
        assert_ne!(Permit::word(UNTRACKED, Stamp::UNTIMED.bits()), PLAIN);
        assert!(!Stamp::from_bits(RETURNED).is_set());
        assert_eq!(Permit::word(UNTRACKED, 0), PLAIN);
    }
}
