//! A call's wait for a permit of one pool (`block=True`): [`Acquire`].

use super::{
    permit::{Permit, Pool},
    semaphore::Wait,
};
use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::Instant;

impl Pool {
    /// Starts a wait for a permit, begun at `since`.
    pub(crate) fn acquire(self: &Arc<Self>, since: Instant) -> Acquire {
        Acquire {
            pool: Arc::clone(self),
            wait: Wait::Start,
            since,
            queued: false,
        }
    }
}

/// A wait for a permit of one pool. `Unpin`, so a service can poll it in `poll_ready`.
///
/// Dropping it leaves the queue; a permit already handed to it goes to the next waiter.
pub(crate) struct Acquire {
    pool: Arc<Pool>,
    wait: Wait,
    since: Instant,
    queued: bool,
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("pool", &self.pool.key)
            .field("since", &self.since)
            .field("queued", &self.queued)
            .finish()
    }
}

impl Acquire {
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub(crate) fn since(&self) -> Instant {
        self.since
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Permit> {
        if matches!(self.wait, Wait::Done) {
            // A permit is taken once; polling again would double it.
            return Poll::Pending;
        }
        let result = self.pool.semaphore.poll_acquire(&mut self.wait, cx);
        match result {
            Poll::Pending => {
                if !self.queued {
                    self.queued = true;
                    #[cfg(feature = "metrics")]
                    self.pool.core.instruments.waiting.increment(1);
                }
                Poll::Pending
            }
            Poll::Ready(()) => {
                if self.queued {
                    self.queued = false;
                    #[cfg(feature = "metrics")]
                    {
                        let instruments = &self.pool.core.instruments;
                        instruments.waiting.decrement(1);
                        instruments.waited(self.since.elapsed());
                    }
                }
                Poll::Ready(self.pool.granted())
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if self.queued {
            #[cfg(feature = "metrics")]
            self.pool.core.instruments.waiting.decrement(1);
        }
        if self.pool.semaphore.cancel(&mut self.wait) {
            // The permit was handed over but never taken: pass it on.
            self.pool.semaphore.release();
            self.pool.publish(0);
        }
    }
}
