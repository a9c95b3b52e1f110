//! Memory and Redis must give identical answers for the same calls at the same clock readings.
//! Both are driven with explicit timestamps (Redis's `TIME` replaced by the script's clock argument),
//! so the comparison is exact to the microsecond rather than subject to timing noise.
//! Needs the real Redis at `IOCD_TEST_REDIS_URL` (skipped when it is unset).

use std::time::{Duration, UNIX_EPOCH};

use crate::{Decision, Family, MemoryLimiter, Policy, RedisLimiter, Window};

/// Small deterministic generator, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[tokio::test]
async fn memory_and_redis_decide_identically() {
    // Every interval is seconds long while the test takes well under a second of real time, so Redis
    // expiring keys in real time can never run ahead of the synthetic clock.
    let policy = Policy::unlimited()
        .with_windows(
            Family::Submit,
            vec![
                Window::new(4, Duration::from_secs(20)),
                Window::new(10, Duration::from_secs(300)),
            ],
        )
        .with_windows(
            Family::Import,
            vec![Window::new(3, Duration::from_secs(30))],
        )
        // 61 s / 7 does not divide evenly: both sides must round the interval the same way.
        .with_windows(
            Family::Get,
            vec![
                Window::new(7, Duration::from_secs(61)),
                Window::new(2, Duration::from_secs(9)),
            ],
        );
    let families = [Family::Submit, Family::Import, Family::Get, Family::List];
    let tenants = ["tenant-a", "tenant-b"];

    let Some(redis_url) = iocd_testkit::env::redis_url() else {
        return;
    };
    let prefix = iocd_testkit::RedisPrefix::new("parity");
    // A realistic Redis clock value, so the script's arithmetic is exercised at full scale.
    let clock_start = iocd_domain::time::system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    let redis = RedisLimiter::connect(&redis_url, prefix.as_str(), policy.clone())
        .await
        .unwrap_or_else(|error| panic!("Redis must be running at {redis_url}: {error}"));
    let memory = MemoryLimiter::new(policy);

    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut now_us = clock_start.as_micros() as u64;
    let (mut allowed, mut limited) = (0, 0);
    for call in 0..600 {
        // Mostly bursts (no time passing), sometimes gaps of up to 6 s.
        if random.below(3) == 0 {
            now_us += random.below(6_000_000);
        }
        let tenant = tenants[random.below(2) as usize];
        let family = families[random.below(4) as usize];
        let from_memory = memory.check_at(tenant, "app", family, now_us);
        let from_redis = redis
            .check_with_clock(tenant, "app", family, Some(now_us))
            .await
            .unwrap();
        assert_eq!(
            from_memory, from_redis,
            "call {call}: {tenant}/{family} at {now_us}"
        );
        match from_memory {
            Decision::Allowed => allowed += 1,
            Decision::Limited { .. } => limited += 1,
        }
    }
    // The sequence must exercise both outcomes for the comparison to mean anything.
    assert!(
        allowed > 100 && limited > 100,
        "{allowed} allowed, {limited} limited"
    );
    // `prefix` deletes its keys from the shared Redis when it drops.
}

#[tokio::test]
async fn usage_reads_the_same_room_from_memory_and_redis_without_counting() {
    use crate::RateLimiter;
    let Some(redis_url) = iocd_testkit::env::redis_url() else {
        return;
    };
    let policy = Policy::unlimited().with_windows(
        Family::Submit,
        vec![
            Window::new(5, Duration::from_secs(60)),
            Window::new(50, Duration::from_secs(3600)),
        ],
    );
    let prefix = iocd_testkit::RedisPrefix::new("usage");
    let redis = RedisLimiter::connect(&redis_url, prefix.as_str(), policy.clone())
        .await
        .unwrap_or_else(|error| panic!("Redis must be running at {redis_url}: {error}"));
    let memory = MemoryLimiter::new(policy);
    for limiter in [&redis as &dyn RateLimiter, &memory] {
        let fresh = limiter
            .usage("t", "app", Family::Submit)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            fresh
                .windows
                .iter()
                .map(|w| (w.remaining, w.limit))
                .collect::<Vec<_>>(),
            [(5, 5), (50, 50)]
        );
        for _ in 0..2 {
            assert!(limiter
                .check("t", "app", Family::Submit)
                .await
                .unwrap()
                .is_allowed());
        }
        // Reading twice counts nothing.
        for _ in 0..2 {
            let used = limiter
                .usage("t", "app", Family::Submit)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                used.windows.iter().map(|w| w.remaining).collect::<Vec<_>>(),
                [3, 48]
            );
            assert_eq!(used.windows[0].period, Duration::from_secs(60));
        }
        let unlimited = limiter
            .usage("t", "app", Family::List)
            .await
            .unwrap()
            .unwrap();
        assert!(unlimited.windows.is_empty());
    }
}
