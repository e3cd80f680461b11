//! Exponential back-off with jitter, written once: the HTTP client's retries
//! (`salesforce::http`) and `sfx watch`'s retries after a failed check or
//! refresh use it with their own base, cap and spread.
//!
//! A small utility every layer may use (layer 0 in `tests/layers.rs`).

use std::time::Duration;

/// A random fraction in `0..1` (in steps of 1/1000), for [`delay`]'s `jitter`.
/// Without randomness from the OS it is 0 (the shortest delay): back-off still
/// grows, only the spread is lost.
pub fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b) % 1000) / 1000.0
}

/// The wait before attempt `attempt + 1` after `attempt` failures (1-based):
/// `base` doubled per failure, capped at `cap`, then spread by `jitter` (`0..1`)
/// over `±spread` of it (`spread` 0.5: from half to one and a half times).
pub fn delay(attempt: u32, base: Duration, cap: Duration, spread: f64, jitter: f64) -> Duration {
    let d = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let spread = spread.clamp(0.0, 1.0);
    d.mul_f64(1.0 - spread + 2.0 * spread * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_caps_and_spreads_by_the_jitter() {
        let ms = Duration::from_millis;
        let (base, cap) = (ms(250), ms(2000));
        // The middle of the spread is the plain doubling, capped.
        let middle: Vec<_> = (1..7).map(|a| delay(a, base, cap, 0.5, 0.5)).collect();
        assert_eq!(
            middle,
            [ms(250), ms(500), ms(1000), ms(2000), ms(2000), ms(2000)]
        );
        // The ends of the spread: ±50 %, ±25 %.
        assert_eq!(delay(1, base, cap, 0.5, 0.0), ms(125));
        assert_eq!(delay(1, base, cap, 0.5, 1.0), ms(375));
        assert_eq!(delay(3, ms(30_000), ms(300_000), 0.25, 0.0), ms(90_000));
        assert_eq!(delay(3, ms(30_000), ms(300_000), 0.25, 1.0), ms(150_000));
        // No overflow, whatever the attempt or jitter.
        assert_eq!(delay(u32::MAX, base, cap, 0.5, 0.5), cap);
        assert_eq!(delay(0, base, cap, 7.0, -3.0), Duration::ZERO);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
