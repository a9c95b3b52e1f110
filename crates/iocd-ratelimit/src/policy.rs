//! Which windows apply to which family.

use std::time::Duration;

use crate::Family;

/// Longest accepted window period. The Redis script does its arithmetic in Lua numbers (doubles),
/// which hold integers exactly only up to 2^53; with timestamps in microseconds since 1970 (~1.8e15)
/// a bound of one year keeps every theoretical arrival time far below that.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// At most `limit` calls at once, refilled at `limit` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub limit: u32,
    pub period: Duration,
}

impl Window {
    pub const fn new(limit: u32, period: Duration) -> Self {
        Window { limit, period }
    }

    pub const fn per_minute(limit: u32) -> Self {
        Window::new(limit, MINUTE)
    }

    pub const fn per_hour(limit: u32) -> Self {
        Window::new(limit, HOUR)
    }

    /// A window must admit at least one call, and its period must be measurable in the limiter's
    /// microsecond clock without overflowing the Redis script's exact-integer range.
    pub fn validate(&self) -> Result<(), InvalidWindow> {
        if self.limit == 0 {
            return Err(InvalidWindow(format!(
                "window {self:?}: limit must be at least 1 (remove the window to make a family unlimited)"
            )));
        }
        if self.period < Duration::from_micros(1) || self.period > MAX_PERIOD {
            return Err(InvalidWindow(format!(
                "window {self:?}: period must be between 1µs and {} days",
                MAX_PERIOD.as_secs() / 86_400
            )));
        }
        Ok(())
    }
}

/// A window that no limiter can enforce; see [`Window::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate-limit window: {0}")]
pub struct InvalidWindow(pub String);

/// The windows of every family. A family with no window is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    windows_by_family: [Vec<Window>; Family::ALL.len()],
}

impl Policy {
    /// The documented MDE limits (docs/reference §0): 100/min + 1,500/h for submit, list, get
    /// and delete; 30/min for import (no hourly figure is documented); 30/min + 1,500/h for
    /// batch delete.
    pub fn mde_defaults() -> Self {
        let single_item = vec![Window::per_minute(100), Window::per_hour(1_500)];
        Policy::unlimited()
            .with_windows(Family::Submit, single_item.clone())
            .with_windows(Family::List, single_item.clone())
            .with_windows(Family::Get, single_item.clone())
            .with_windows(Family::Delete, single_item)
            .with_windows(Family::Import, vec![Window::per_minute(30)])
            .with_windows(
                Family::BatchDelete,
                vec![Window::per_minute(30), Window::per_hour(1_500)],
            )
    }

    /// No window for any family: every call is admitted without touching any state.
    pub fn unlimited() -> Self {
        Policy {
            windows_by_family: Default::default(),
        }
    }

    /// Replaces every window of `family`. An empty list makes the family unlimited.
    ///
    /// # Panics
    /// If a window is invalid (see [`Window::validate`]); use [`Policy::try_with_windows`] for
    /// values that come from configuration.
    pub fn with_windows(self, family: Family, windows: Vec<Window>) -> Self {
        self.try_with_windows(family, windows)
            .unwrap_or_else(|invalid| panic!("{invalid}"))
    }

    /// Like [`Policy::with_windows`], reporting an invalid window instead of panicking.
    pub fn try_with_windows(
        mut self,
        family: Family,
        windows: Vec<Window>,
    ) -> Result<Self, InvalidWindow> {
        windows.iter().try_for_each(Window::validate)?;
        self.windows_by_family[family.index()] = windows;
        Ok(self)
    }

    /// Sets the limit of `family`'s window whose period is `period` (adding the window if there is
    /// none), or removes that window with `None`. Convenient for "per minute" / "per hour" overrides
    /// in configuration: `.try_with_limit(Family::Import, Duration::from_secs(3600), Some(1_000))`.
    pub fn try_with_limit(
        self,
        family: Family,
        period: Duration,
        limit: Option<u32>,
    ) -> Result<Self, InvalidWindow> {
        let mut windows = self.windows(family).to_vec();
        match limit {
            None => windows.retain(|window| window.period != period),
            Some(limit) => {
                let replacement = Window::new(limit, period);
                match windows.iter_mut().find(|window| window.period == period) {
                    Some(existing) => *existing = replacement,
                    None => windows.push(replacement),
                }
            }
        }
        self.try_with_windows(family, windows)
    }

    /// Multiplies every limit by `factor` (rounded, at least 1), keeping periods: e.g. a lab or load
    /// test deployment that wants ten times MDE's allowance with the same shape.
    /// A non-finite or non-positive factor leaves every limit at 1.
    pub fn scaled(mut self, factor: f64) -> Self {
        for windows in &mut self.windows_by_family {
            for window in windows {
                // `as` saturates (and maps NaN to 0), so the result is always a valid u32.
                let scaled_limit = (f64::from(window.limit) * factor).round() as u32;
                window.limit = scaled_limit.max(1);
            }
        }
        self
    }

    /// The windows of `family`, in the order given (their index names their Redis key).
    pub fn windows(&self, family: Family) -> &[Window] {
        &self.windows_by_family[family.index()]
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::mde_defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_mde_limits() {
        let policy = Policy::mde_defaults();
        for family in [Family::Submit, Family::List, Family::Get, Family::Delete] {
            assert_eq!(
                policy.windows(family),
                [Window::per_minute(100), Window::per_hour(1_500)]
            );
        }
        assert_eq!(policy.windows(Family::Import), [Window::per_minute(30)]);
        assert_eq!(
            policy.windows(Family::BatchDelete),
            [Window::per_minute(30), Window::per_hour(1_500)]
        );
    }

    #[test]
    fn invalid_windows_are_rejected() {
        let zero_limit =
            Policy::unlimited().try_with_windows(Family::Get, vec![Window::per_minute(0)]);
        assert!(zero_limit.is_err());
        let zero_period =
            Policy::unlimited().try_with_windows(Family::Get, vec![Window::new(1, Duration::ZERO)]);
        assert!(zero_period.is_err());
        let too_long = Policy::unlimited().try_with_windows(
            Family::Get,
            vec![Window::new(1, MAX_PERIOD + Duration::from_secs(1))],
        );
        assert!(too_long.is_err());
    }

    #[test]
    fn limit_overrides_replace_add_and_remove_windows_by_period() {
        let policy = Policy::mde_defaults()
            .try_with_limit(Family::Submit, MINUTE, Some(7))
            .and_then(|p| p.try_with_limit(Family::Import, HOUR, Some(900)))
            .and_then(|p| p.try_with_limit(Family::List, HOUR, None))
            .unwrap();
        assert_eq!(
            policy.windows(Family::Submit),
            [Window::per_minute(7), Window::per_hour(1_500)]
        );
        assert_eq!(
            policy.windows(Family::Import),
            [Window::per_minute(30), Window::per_hour(900)]
        );
        assert_eq!(policy.windows(Family::List), [Window::per_minute(100)]);
        assert!(Policy::unlimited()
            .try_with_limit(Family::Get, MINUTE, Some(0))
            .is_err());
    }

    #[test]
    fn scaling_multiplies_limits_and_never_reaches_zero() {
        let doubled = Policy::mde_defaults().scaled(2.0);
        assert_eq!(
            doubled.windows(Family::Delete),
            [Window::per_minute(200), Window::per_hour(3_000)]
        );
        let tiny = Policy::mde_defaults().scaled(0.001);
        assert_eq!(tiny.windows(Family::Import), [Window::per_minute(1)]);
        let nonsense = Policy::mde_defaults().scaled(f64::NAN);
        assert_eq!(nonsense.windows(Family::Import), [Window::per_minute(1)]);
    }
}
