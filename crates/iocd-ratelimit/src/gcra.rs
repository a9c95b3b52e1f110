//! The GCRA arithmetic shared by both limiters. `redis_gcra.lua` mirrors [`admit`] line for line;
//! any change here must be made there too (the parity test compares them).
//!
//! Each window keeps one number per key, the TAT ("theoretical arrival time"): the instant at which
//! the meter would be empty again. With `interval = period / limit` and `burst = limit * interval`,
//! a call at `now` would move it to `max(tat, now) + interval`, and is admitted if that stays within
//! `burst` of `now`. All times are whole microseconds so both sides compute identical integers
//! (Redis `TIME` has microsecond resolution, and Lua doubles stay exact at that scale).

use std::time::Duration;

use crate::{Decision, Policy, Window};

/// A validated [`Window`] with its GCRA constants precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraWindow {
    pub window: Window,
    /// Time one call occupies. Rounded up, so the sustained rate never exceeds `limit / period`.
    pub interval_us: u64,
    /// How far ahead of now the TAT may run: room for `limit` calls at once.
    pub burst_us: u64,
}

impl GcraWindow {
    fn new(window: Window) -> Self {
        // `Policy` only holds validated windows: limit ≥ 1 and 1µs ≤ period ≤ one year, so neither the
        // division nor the product (≤ period + limit µs) can fail.
        let period_us = window.period.as_micros() as u64;
        let interval_us = period_us.div_ceil(u64::from(window.limit));
        GcraWindow {
            window,
            interval_us,
            burst_us: interval_us * u64::from(window.limit),
        }
    }
}

/// The GCRA windows of every family, indexed by `Family::index`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPolicy {
    windows_by_family: Vec<Vec<GcraWindow>>,
}

impl CompiledPolicy {
    pub fn new(policy: &Policy) -> Self {
        CompiledPolicy {
            windows_by_family: crate::Family::ALL
                .iter()
                .map(|family| {
                    policy
                        .windows(*family)
                        .iter()
                        .copied()
                        .map(GcraWindow::new)
                        .collect()
                })
                .collect(),
        }
    }

    pub fn windows(&self, family: crate::Family) -> &[GcraWindow] {
        &self.windows_by_family[family.index()]
    }
}

/// Outcome of [`admit`], before it is dressed as a public [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admitted,
    Refused { window_index: usize, wait_us: u64 },
}

impl Verdict {
    pub fn into_decision(self, windows: &[GcraWindow]) -> Decision {
        match self {
            Verdict::Admitted => Decision::Allowed,
            Verdict::Refused {
                window_index,
                wait_us,
            } => {
                let refusing = windows[window_index].window;
                Decision::Limited {
                    retry_after: Duration::from_micros(wait_us),
                    limit: refusing.limit,
                    period: refusing.period,
                }
            }
        }
    }
}

/// Decides one call at `now_us` against every window (`tats[i]` belongs to `windows[i]`; 0 = never used).
/// If every window has room, advances every TAT and admits. Otherwise changes nothing and reports the
/// window needing the longest wait (the first such on a tie): after that wait every window has room,
/// because waiting only ever makes room.
pub(crate) fn admit(windows: &[GcraWindow], tats: &mut [u64], now_us: u64) -> Verdict {
    debug_assert_eq!(windows.len(), tats.len());
    let mut refusal: Option<(usize, u64)> = None;
    for (window_index, (window, tat)) in windows.iter().zip(tats.iter()).enumerate() {
        let next_tat = (*tat).max(now_us) + window.interval_us;
        let wait_us = next_tat
            .saturating_sub(window.burst_us)
            .saturating_sub(now_us);
        let waits_longer = refusal.is_none_or(|(_, longest)| wait_us > longest);
        if wait_us > 0 && waits_longer {
            refusal = Some((window_index, wait_us));
        }
    }
    if let Some((window_index, wait_us)) = refusal {
        return Verdict::Refused {
            window_index,
            wait_us,
        };
    }
    for (window, tat) in windows.iter().zip(tats.iter_mut()) {
        *tat = (*tat).max(now_us) + window.interval_us;
    }
    Verdict::Admitted
}

/// How many calls each window would admit at `now_us`, without admitting any (`tats[i]` belongs
/// to `windows[i]`; 0 = never used). A window's TAT runs `interval` ahead per call counted, and a
/// call fits while the TAT stays within `burst` of now.
pub(crate) fn usage(windows: &[GcraWindow], tats: &[u64], now_us: u64) -> crate::Usage {
    crate::Usage {
        windows: windows
            .iter()
            .zip(tats)
            .map(|(window, tat)| {
                let room = window.burst_us.saturating_sub(tat.saturating_sub(now_us));
                crate::WindowUsage {
                    limit: window.window.limit,
                    period: window.window.period,
                    remaining: u32::try_from(room / window.interval_us)
                        .unwrap_or(u32::MAX)
                        .min(window.window.limit),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcra(limit: u32, period_ms: u64) -> GcraWindow {
        GcraWindow::new(Window::new(limit, Duration::from_millis(period_ms)))
    }

    #[test]
    fn usage_counts_down_with_each_call_and_back_up_with_time() {
        // 3 calls per 3 s: one call occupies a second (1,000,000 µs).
        let windows = [gcra(3, 3_000)];
        let mut tats = [0u64];
        let start = 10_000_000;
        assert_eq!(usage(&windows, &tats, start).windows[0].remaining, 3);
        assert_eq!(admit(&windows, &mut tats, start), Verdict::Admitted);
        assert_eq!(admit(&windows, &mut tats, start), Verdict::Admitted);
        let now = usage(&windows, &tats, start).windows[0];
        assert_eq!((now.remaining, now.limit), (1, 3));
        assert_eq!(
            usage(&windows, &tats, start + 1_000_000).windows[0].remaining,
            2
        );
        assert_eq!(
            usage(&windows, &tats, start + 9_000_000).windows[0].remaining,
            3
        );
    }

    #[test]
    fn burst_of_limit_then_one_per_interval() {
        let windows = [gcra(100, 60_000)];
        let mut tats = [0];
        let start = 1_000_000;
        for _ in 0..100 {
            assert_eq!(admit(&windows, &mut tats, start), Verdict::Admitted);
        }
        assert_eq!(
            admit(&windows, &mut tats, start),
            Verdict::Refused {
                window_index: 0,
                wait_us: 600_000
            }
        );
        // One microsecond early is still too early; exactly on time is admitted, once.
        assert_eq!(
            admit(&windows, &mut tats, start + 599_999),
            Verdict::Refused {
                window_index: 0,
                wait_us: 1
            }
        );
        assert_eq!(
            admit(&windows, &mut tats, start + 600_000),
            Verdict::Admitted
        );
        assert!(matches!(
            admit(&windows, &mut tats, start + 600_000),
            Verdict::Refused { .. }
        ));
    }

    #[test]
    fn uneven_periods_round_the_interval_up() {
        let window = gcra(3, 1_000);
        assert_eq!(window.interval_us, 333_334);
        assert_eq!(window.burst_us, 1_000_002);
    }

    #[test]
    fn refusal_names_the_longest_wait_and_changes_nothing() {
        let windows = [gcra(2, 200), gcra(3, 60_000)];
        let mut tats = [0, 0];
        let now = 5_000_000;
        assert_eq!(admit(&windows, &mut tats, now), Verdict::Admitted);
        assert_eq!(admit(&windows, &mut tats, now), Verdict::Admitted);
        let before = tats;
        assert_eq!(
            admit(&windows, &mut tats, now),
            Verdict::Refused {
                window_index: 0,
                wait_us: 100_000
            }
        );
        assert_eq!(tats, before);
        assert_eq!(admit(&windows, &mut tats, now + 100_000), Verdict::Admitted);
        // The short window has room again after 100 ms, but the hourly one is out until its TAT
        // (now + 60 s) comes within its 60 s burst of the clock: 20 s after the third call.
        assert_eq!(
            admit(&windows, &mut tats, now + 200_000),
            Verdict::Refused {
                window_index: 1,
                wait_us: 19_800_000
            }
        );
    }
}
