//! Impairment profiles: named ones for the networks people meet from (`4g`, `wifi-bad`, …)
//! and explicit specs such as `down=1mbit,queue=200ms,delay=25ms,jitter=5ms,loss=1%`.
//!
//! A spec is a comma-separated list. It may start with a profile name, which later keys
//! override. Keys:
//!
//! | key | meaning | example |
//! |---|---|---|
//! | `up`, `down` | rate cap of the uplink (participant → server) or downlink | `up=600kbit` |
//! | `rate` | both rate caps | `rate=8mbit` |
//! | `queue` | longest wait in the bottleneck queue | `queue=200ms` |
//! | `delay` | one-way delay (the round trip is twice this) | `delay=25ms` |
//! | `jitter` | the delay varies within ±this | `jitter=10ms` |
//! | `loss` | independent random loss | `loss=2%` |
//! | `burst` | bursty (Gilbert) loss: long-run rate / mean burst length in packets | `burst=3%/4` |
//!
//! `queue`, `delay`, `jitter`, `loss` and `burst` apply to both directions unless prefixed
//! with `up.` or `down.` (`up.loss=5%`). Rates take `bit`, `kbit`, `mbit`, `gbit` (or `k`,
//! `m`, `g`); times take `us`, `ms`, `s` (bare numbers are ms); shares take `%` or a fraction.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::link::{Burst, LinkSpec};

/// Queue bound when a rate is capped and no `queue` is given.
pub const DEFAULT_QUEUE: Duration = Duration::from_millis(200);

/// The named profiles: name, spec, what it stands for.
pub const PROFILES: &[(&str, &str, &str)] = &[
    (
        "passthrough",
        "",
        "through the shims but unimpaired: the cost of the shims themselves",
    ),
    (
        "1mbit",
        "rate=1mbit,queue=200ms,delay=15ms",
        "a 1 Mbit/s link both ways",
    ),
    (
        "down1m",
        "down=1mbit,queue=200ms,delay=15ms",
        "1 Mbit/s down, uplink uncapped",
    ),
    (
        "up600k",
        "up=600kbit,queue=200ms,delay=15ms",
        "600 kbit/s up, downlink uncapped",
    ),
    (
        "lossy2",
        "loss=2%,delay=25ms,jitter=10ms",
        "2 % loss each way, 50 ms round trip, ±10 ms jitter",
    ),
    (
        "4g",
        "down=12mbit,up=4mbit,queue=300ms,delay=35ms,jitter=8ms,loss=0.2%",
        "a fair 4G cell: deep buffers, some jitter",
    ),
    (
        "wifi-bad",
        "down=3mbit,up=2mbit,queue=150ms,delay=10ms,jitter=15ms,loss=1%,burst=3%/5",
        "hotel Wi-Fi: a few Mbit/s, jitter and bursts of loss",
    ),
    (
        "satellite",
        "down=10mbit,up=2mbit,queue=500ms,delay=300ms,jitter=10ms,loss=0.5%",
        "a geostationary link: 600 ms round trip",
    ),
];

/// What a participant's link does, both directions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impairment {
    /// Profile name, or `custom`.
    pub name: String,
    /// The spec as given (profile name and overrides).
    pub spec: String,
    /// Participant → server.
    pub up: LinkSpec,
    /// Server → participant.
    pub down: LinkSpec,
}

/// A spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("impairment spec {spec:?}: {reason}")]
pub struct SpecError {
    spec: String,
    reason: String,
}

fn parse_rate(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_suffix("/s").unwrap_or(&v);
    let v = v
        .strip_suffix("bps")
        .or_else(|| v.strip_suffix("bit"))
        .unwrap_or(v);
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1e3),
        'm' => (&v[..v.len() - 1], 1e6),
        'g' => (&v[..v.len() - 1], 1e9),
        _ => (v, 1.0),
    };
    let x: f64 = num.parse().ok()?;
    (x.is_finite() && x > 0.0).then(|| (x * mult).round() as u64)
}

fn parse_time(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, secs_per) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1e-3)
    };
    let x: f64 = num.parse().ok()?;
    (x.is_finite() && (0.0..=60.0 / secs_per).contains(&x))
        .then(|| Duration::from_secs_f64(x * secs_per))
}

fn parse_share(v: &str) -> Option<f64> {
    let v = v.trim();
    let x = match v.strip_suffix('%') {
        Some(p) => p.parse::<f64>().ok()? / 100.0,
        None => v.parse::<f64>().ok()?,
    };
    (0.0..1.0).contains(&x).then_some(x)
}

fn parse_burst(v: &str) -> Option<Burst> {
    let (loss, len) = v.split_once(['/', ':'])?;
    let mean_len: f64 = len.trim().parse().ok()?;
    (1.0..=1000.0).contains(&mean_len).then_some(())?;
    Some(Burst {
        loss: parse_share(loss)?,
        mean_len,
    })
}

impl FromStr for Impairment {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError {
            spec: s.to_owned(),
            reason,
        };
        let mut up = LinkSpec::default();
        let mut down = LinkSpec::default();
        let mut name = None;
        let mut queue_given = [false; 2];
        for (i, item) in s.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                let named = PROFILES.iter().find(|(n, _, _)| *n == item);
                match named {
                    Some((n, spec, _)) if i == 0 => {
                        let p: Impairment = spec.parse()?;
                        (up, down) = (p.up, p.down);
                        name = Some((*n).to_owned());
                        queue_given = [!spec.is_empty(); 2];
                        continue;
                    }
                    Some(_) => return Err(err(format!("profile {item:?} must come first"))),
                    None => {
                        let names: Vec<&str> = PROFILES.iter().map(|p| p.0).collect();
                        return Err(err(format!(
                            "unknown profile {item:?} (profiles: {})",
                            names.join(", ")
                        )));
                    }
                }
            };
            let (dirs, key) = match key.trim().split_once('.') {
                Some(("up", k)) => (&[0usize][..], k),
                Some(("down", k)) => (&[1usize][..], k),
                Some((d, _)) => return Err(err(format!("unknown direction {d:?}"))),
                None => (&[0usize, 1][..], key.trim()),
            };
            let bad = |what: &str| err(format!("{key}={value}: expected {what}"));
            for &d in dirs {
                let link = if d == 0 { &mut up } else { &mut down };
                match key {
                    "up" | "down" | "rate" => {
                        let r = parse_rate(value).ok_or_else(|| bad("a rate like 1mbit"))?;
                        let applies = key == "rate" || (key == "up") == (d == 0);
                        if applies {
                            link.rate_bps = Some(r);
                        }
                    }
                    "queue" => {
                        link.queue = parse_time(value).ok_or_else(|| bad("a time like 200ms"))?;
                        queue_given[d] = true;
                    }
                    "delay" => {
                        link.delay = parse_time(value).ok_or_else(|| bad("a time like 25ms"))?
                    }
                    "jitter" => {
                        link.jitter = parse_time(value).ok_or_else(|| bad("a time like 5ms"))?
                    }
                    "loss" => {
                        link.loss = parse_share(value).ok_or_else(|| bad("a share like 1%"))?
                    }
                    "burst" => {
                        link.burst = Some(
                            parse_burst(value)
                                .ok_or_else(|| bad("loss/mean burst length like 3%/4"))?,
                        )
                    }
                    _ => return Err(err(format!("unknown key {key:?}"))),
                }
            }
        }
        for (d, link) in [&mut up, &mut down].into_iter().enumerate() {
            if link.rate_bps.is_some() && !queue_given[d] {
                link.queue = DEFAULT_QUEUE;
            }
        }
        let only_name = name.is_some() && !s.contains('=');
        Ok(Impairment {
            name: if only_name {
                name.unwrap_or_default()
            } else {
                name.map_or_else(|| "custom".to_owned(), |n| format!("{n}+custom"))
            },
            spec: s.trim().to_owned(),
            up,
            down,
        })
    }
}

fn fmt_rate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", bps as f64 / 1e3)
    }
}

fn fmt_link(l: &LinkSpec) -> String {
    if l.is_clean() {
        return "clean".into();
    }
    let mut parts = vec![];
    if let Some(r) = l.rate_bps {
        parts.push(format!(
            "{} (queue {} ms)",
            fmt_rate(r),
            l.queue.as_millis()
        ));
    }
    if !l.delay.is_zero() || !l.jitter.is_zero() {
        parts.push(format!(
            "{} ms ±{} ms",
            l.delay.as_millis(),
            l.jitter.as_millis()
        ));
    }
    if l.loss > 0.0 {
        parts.push(format!("{}% loss", l.loss * 100.0));
    }
    if let Some(b) = l.burst {
        parts.push(format!(
            "{}% burst loss ({} pkts)",
            b.loss * 100.0,
            b.mean_len
        ));
    }
    parts.join(", ")
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: up {}; down {}",
            self.name,
            fmt_link(&self.up),
            fmt_link(&self.down)
        )
    }
}

/// One line per named profile, for `--help` and errors.
pub fn profiles_help() -> String {
    PROFILES
        .iter()
        .map(|(n, s, d)| format!("  {n:<12} {d} [{s}]"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_named_profile_parses() {
        for (name, _, _) in PROFILES {
            let p: Impairment = name.parse().unwrap();
            assert_eq!(p.name, *name);
        }
        let p: Impairment = "passthrough".parse().unwrap();
        assert!(p.up.is_clean() && p.down.is_clean());
    }

    #[test]
    fn an_explicit_spec_sets_each_direction() {
        let p: Impairment = "down=1mbit,queue=200ms,delay=25ms,jitter=5ms,loss=1%,burst=3%/4"
            .parse()
            .unwrap();
        assert_eq!(p.name, "custom");
        assert_eq!(p.down.rate_bps, Some(1_000_000));
        assert_eq!(p.up.rate_bps, None);
        for l in [&p.up, &p.down] {
            assert_eq!((l.queue, l.delay, l.jitter), (ms(200), ms(25), ms(5)));
            assert!((l.loss - 0.01).abs() < 1e-12);
            assert_eq!(
                l.burst,
                Some(Burst {
                    loss: 0.03,
                    mean_len: 4.0
                })
            );
        }
    }

    #[test]
    fn the_lossy2_profile_is_2_percent_with_50ms_round_trip() {
        let p: Impairment = "lossy2".parse().unwrap();
        assert_eq!(p.up.delay + p.down.delay, ms(50));
        assert_eq!(p.up.jitter, ms(10));
        assert!((p.up.loss - 0.02).abs() < 1e-12 && (p.down.loss - 0.02).abs() < 1e-12);
        assert_eq!(p.up.rate_bps, None);
    }

    #[test]
    fn profiles_take_overrides_and_direction_prefixes() {
        let p: Impairment = "4g,up.loss=5%,down=2m,queue=80".parse().unwrap();
        assert_eq!(p.name, "4g+custom");
        assert!((p.up.loss - 0.05).abs() < 1e-12);
        assert!((p.down.loss - 0.002).abs() < 1e-12);
        assert_eq!(p.down.rate_bps, Some(2_000_000));
        assert_eq!(p.up.rate_bps, Some(4_000_000));
        assert_eq!(p.down.queue, ms(80));
        let r: Impairment = "up=1.5mbit".parse().unwrap();
        assert_eq!(r.up.rate_bps, Some(1_500_000));
        assert_eq!(r.up.queue, DEFAULT_QUEUE);
        assert_eq!(
            "rate=600k".parse::<Impairment>().unwrap().down.rate_bps,
            Some(600_000)
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("nosuch", "unknown profile"),
            ("loss=150%", "expected a share"),
            ("down=fast", "expected a rate"),
            ("side.loss=1%", "unknown direction"),
            ("delay=25ms,4g", "must come first"),
            ("colour=red", "unknown key"),
            ("burst=3%", "mean burst length"),
        ] {
            let e = spec.parse::<Impairment>().unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn the_description_names_rates_and_delays() {
        let p: Impairment = "up600k".parse().unwrap();
        assert_eq!(
            p.to_string(),
            "up600k: up 600 kbit/s (queue 200 ms), 15 ms ±0 ms; down 15 ms ±0 ms"
        );
    }
}
