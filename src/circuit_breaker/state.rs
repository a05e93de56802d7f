//! The public [`State`] of a breaker, and the state word that packs it with a generation
//! number (and, while half-open, the successful probes so far): every call loads the word;
//! only transitions and probe results write it. Also the packing of the probe slots and of
//! an open state's deadline.

use std::fmt;

/// The state of a breaker.
///
/// ```
/// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
///
/// let handle = GenericCircuitBreakerLayer::new().handle();
/// assert_eq!(handle.state(), State::Closed);
/// handle.force_open();
/// assert_eq!(handle.state(), State::ForcedOpen);
/// assert_eq!(State::HalfOpen.as_str(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through and are measured.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A few probe calls go through; their results close or reopen the breaker.
    HalfOpen,
    /// Opened by an operator ([`force_open`](super::BreakerHandle::force_open)): every
    /// call is rejected until [`reset`](super::BreakerHandle::reset).
    ForcedOpen,
    /// Turned off by an operator ([`disable`](super::BreakerHandle::disable)): every
    /// call goes through and is measured, and the breaker never trips, until
    /// [`reset`](super::BreakerHandle::reset).
    Disabled,
}

impl State {
    /// Every state, in declaration order.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::State;
    ///
    /// let names = State::ALL.map(State::as_str);
    /// assert_eq!(names, ["closed", "open", "half_open", "forced_open", "disabled"]);
    /// ```
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::State;
    ///
    /// assert_eq!(State::ForcedOpen.as_str(), "forced_open");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    const fn from_bits(bits: u64) -> State {
        match bits {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

// ===== the state word =====

pub(super) const STATE_MASK: u64 = 0xFF;
pub(super) const SUCCESSES_SHIFT: u32 = 20;
pub(super) const COUNT_MASK: u64 = 0xFFF;
pub(super) const GEN_SHIFT: u32 = 32;
pub(super) const ONE_SUCCESS: u64 = 1 << SUCCESSES_SHIFT;

pub(super) const fn pack(state: State, gen: u32) -> u64 {
    ((gen as u64) << GEN_SHIFT) | state as u64
}

pub(super) const fn state_of(word: u64) -> State {
    State::from_bits(word & STATE_MASK)
}

pub(super) const fn gen_of(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32
}

pub(super) const fn successes_of(word: u64) -> u32 {
    ((word >> SUCCESSES_SHIFT) & COUNT_MASK) as u32
}

// Probe slots: the probes in flight (low 32 bits) in an epoch (high 32 bits).

pub(super) const fn slots_in_flight(slots: u64) -> u32 {
    slots as u32
}

pub(super) const fn slots_epoch(slots: u64) -> u32 {
    (slots >> 32) as u32
}

// The deadline of an open state: microseconds since the breaker's start on 52 bits (142
// years), tagged with the low 12 bits of the generation it belongs to.
pub(super) const UNTIL_BITS: u32 = 52;
pub(super) const UNTIL_MASK: u64 = (1 << UNTIL_BITS) - 1;

pub(super) const fn pack_open(gen: u32, until: u64) -> u64 {
    ((gen as u64 & COUNT_MASK) << UNTIL_BITS) | (until & UNTIL_MASK)
}

pub(super) const fn open_belongs_to(info: u64, gen: u32) -> bool {
    info >> UNTIL_BITS == gen as u64 & COUNT_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn the_word_packs_and_unpacks() {
        let word = pack(State::HalfOpen, u32::MAX) + 7 * ONE_SUCCESS;
        assert_eq!(state_of(word), State::HalfOpen);
        assert_eq!(gen_of(word), u32::MAX);
        assert_eq!(successes_of(word), 7);
        let slots = (5u64 << 32) + 3;
        assert_eq!((slots_epoch(slots), slots_in_flight(slots)), (5, 3));
        for state in State::ALL {
            assert_eq!(state_of(pack(state, 9)), state);
            assert_eq!(State::ALL[state.index()], state);
        }
        let info = pack_open(0x1234_5678, UNTIL_MASK);
        assert!(open_belongs_to(info, 0x678));
        assert!(!open_belongs_to(info, 0x679));
        assert_eq!(info & UNTIL_MASK, UNTIL_MASK);
    }
}
