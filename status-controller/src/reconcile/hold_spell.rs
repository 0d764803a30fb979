//! How long the controller has held (acted on nothing for want of a complete, fresh view), whatever the
//! reasons on the way, and when that is worth telling: once when the spell passes `--notify-hold-after`,
//! and once more at its end if it was told. Pure: the loop passes the clock and does the telling.

use std::time::{Duration, Instant};

use crate::model::HoldReason;

/// A hold under way, from its first held pass to the next fresh view.
#[derive(Debug, Clone, Copy)]
struct Spell {
    since: Instant,
    /// Its latest reason.
    reason: HoldReason,
    /// Told as a long one.
    told: bool,
}

/// The hold spell under way, if any.
#[derive(Debug, Default)]
pub struct HoldSpell {
    current: Option<Spell>,
}

impl HoldSpell {
    /// A held pass at `now`, for `reason`: how long the spell has lasted, when this is the pass to tell it
    /// as a long one (the first at or past `tell_after`).
    pub fn held(
        &mut self,
        reason: HoldReason,
        now: Instant,
        tell_after: Duration,
    ) -> Option<Duration> {
        let spell = self.current.get_or_insert(Spell {
            since: now,
            reason,
            told: false,
        });
        spell.reason = reason;
        let held_for = now.saturating_duration_since(spell.since);
        if spell.told || held_for < tell_after {
            return None;
        }
        spell.told = true;
        Some(held_for)
    }

    /// A fresh view at `now`: the spell is over. Its latest reason and how long it lasted, when it was told as
    /// a long one.
    pub fn over(&mut self, now: Instant) -> Option<(HoldReason, Duration)> {
        let spell = self.current.take().filter(|spell| spell.told)?;
        Some((spell.reason, now.saturating_duration_since(spell.since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(60);

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_long_spell_is_told_once_with_its_latest_reason_and_so_is_its_end() {
        let start = Instant::now();
        let mut spell = HoldSpell::default();
        assert_eq!(spell.held(HoldReason::ApiUnreachable, start, AFTER), None);
        assert_eq!(
            spell.held(HoldReason::ApiNotReady, start + secs(59), AFTER),
            None
        );
        assert_eq!(
            spell.held(HoldReason::Stale, start + secs(60), AFTER),
            Some(secs(60)),
            "whatever the reasons on the way"
        );
        assert_eq!(
            spell.held(HoldReason::Stale, start + secs(90), AFTER),
            None,
            "told once"
        );
        assert_eq!(
            spell.over(start + secs(100)),
            Some((HoldReason::Stale, secs(100)))
        );
        assert_eq!(spell.over(start + secs(101)), None, "over once");
    }

    #[test]
    fn a_short_spell_is_not_told_and_the_next_starts_afresh() {
        let start = Instant::now();
        let mut spell = HoldSpell::default();
        assert_eq!(spell.held(HoldReason::ApiNotReady, start, AFTER), None);
        assert_eq!(spell.over(start + secs(59)), None);
        assert_eq!(
            spell.held(HoldReason::ApiNotReady, start + secs(100), AFTER),
            None,
            "a new spell"
        );
        assert_eq!(
            spell.held(HoldReason::ApiNotReady, start + secs(160), AFTER),
            Some(secs(60))
        );
    }

    #[test]
    fn told_at_once_when_asked_to_tell_every_hold() {
        let mut spell = HoldSpell::default();
        assert_eq!(
            spell.held(HoldReason::ApiNotReady, Instant::now(), Duration::ZERO),
            Some(Duration::ZERO)
        );
    }
}
