//! The report: markdown tables of the medians over the runs, with the spread of the headline
//! figure.

use std::collections::BTreeMap;

use crate::measure::Metrics;
use crate::scenarios::{Load, Scenario};
use crate::target::Kind;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The tables: one per scenario, one row per server, medians with the headline's spread.
pub fn report(
    scenarios: &[Scenario],
    targets: &[Kind],
    results: &BTreeMap<(usize, usize), Vec<Metrics>>,
    runs: usize,
) -> String {
    let mut out = format!("Medians of {runs} run(s); [min–max] spread of the headline figure.\n");
    for (si, scenario) in scenarios.iter().enumerate() {
        if let Load::Publish { .. } | Load::Recover { .. } = scenario.load {
            out.push_str(&broker_report(si, scenario, targets, results));
            continue;
        }
        out.push_str(&format!(
            "\n### {} ({} clients)\n\n",
            scenario.name, scenario.clients
        ));
        out.push_str("| server | connected/failed | connect ms | deliveries/s | events/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | wrong | RSS/conn KB | CPU µs/delivery | core µs/delivery | frames/write | tool CPU µs/delivery |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (ti, kind) in targets.iter().enumerate() {
            let Some(runs) = results.get(&(si, ti)) else {
                continue;
            };
            let m = |f: fn(&Metrics) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
            let spread = |f: fn(&Metrics) -> f64| {
                let values: Vec<f64> = runs.iter().map(f).collect();
                let (lo, hi) = values
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                (lo, hi)
            };
            let (headline, (lo, hi)) = match scenario.load {
                Load::Idle { .. } => (m(|x| x.rss_per_conn) / 1024.0, {
                    let (a, b) = spread(|x| x.rss_per_conn);
                    (a / 1024.0, b / 1024.0)
                }),
                _ => (m(|x| x.deliveries_per_s), spread(|x| x.deliveries_per_s)),
            };
            let dps = if matches!(scenario.load, Load::Idle { .. }) {
                "–".to_owned()
            } else {
                format!("{headline:.0} [{lo:.0}–{hi:.0}]")
            };
            let rss = if matches!(scenario.load, Load::Idle { .. }) {
                format!("{headline:.2} [{lo:.2}–{hi:.2}]")
            } else {
                "–".to_owned()
            };
            let costed = matches!(scenario.load, Load::Fixed { .. } | Load::Fanout { .. });
            let cost = |f: fn(&Metrics) -> f64, digits: usize| {
                let value = m(f);
                if costed && value.is_finite() {
                    format!("{value:.digits$}")
                } else {
                    "–".to_owned()
                }
            };
            let cpu = cost(|x| x.cpu_us_per_delivery, 2);
            let ms = |f: fn(&Metrics) -> f64| {
                if matches!(scenario.load, Load::Idle { .. }) {
                    "–".to_owned()
                } else {
                    format!("{:.2}", m(f) / 1000.0)
                }
            };
            out.push_str(&format!(
                "| {} | {:.0}/{:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |\n",
                kind.name(),
                m(|x| x.connected),
                m(|x| x.failed),
                m(|x| x.connect_ms),
                dps,
                if matches!(scenario.load, Load::Idle { .. }) { "–".to_owned() } else { format!("{:.0}", m(|x| x.events_per_s)) },
                ms(|x| x.p50),
                ms(|x| x.p99),
                ms(|x| x.p999),
                ms(|x| x.max),
                m(|x| x.lost),
                m(|x| x.wrong),
                rss,
                cpu,
                cost(|x| x.core_us_per_delivery, 2),
                cost(|x| x.frames_per_write, 1),
                cost(|x| x.tool_cpu_us_per_delivery, 2),
            ));
        }
        if let Load::Idle { cpu_seconds } = scenario.load {
            out.push_str(&format!(
                "\nServer CPU while idle, per connection per second (over {cpu_seconds} s, the clients answering pings):"
            ));
            for (ti, kind) in targets.iter().enumerate() {
                if let Some(runs) = results.get(&(si, ti)) {
                    let idle = median(
                        &mut runs
                            .iter()
                            .map(|x| x.idle_cpu_us_per_conn_s)
                            .collect::<Vec<_>>(),
                    );
                    out.push_str(&format!(" {} {idle:.2} µs;", kind.name()));
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The publish and recovery scenarios' tables.
fn broker_report(
    si: usize,
    scenario: &Scenario,
    targets: &[Kind],
    results: &BTreeMap<(usize, usize), Vec<Metrics>>,
) -> String {
    let mut out = match scenario.load {
        Load::Publish {
            events,
            publishers,
            spread,
        } => format!(
            "\n### {} ({events} events, one per request, {publishers} publishers, no clients{})\n\n\
             | server | events/s [min–max] | nodes' CPU µs/event | Redis CPU µs/event | busiest Redis' share |\n|---|---|---|---|---|\n",
            scenario.name,
            if spread { ", over 3 namespaces" } else { "" }
        ),
        Load::Recover { missed, trials } => format!(
            "\n### {} ({missed} missed events, {trials} resumes; with Redis, replayed from Redis)\n\n\
             | server | p50 ms | p99 ms | max ms | replayed events/s (p50) | nodes' CPU µs/replayed event |\n|---|---|---|---|---|---|\n",
            scenario.name
        ),
        _ => unreachable!("only the broker scenarios"),
    };
    for (ti, kind) in targets.iter().enumerate() {
        let Some(runs) = results.get(&(si, ti)) else {
            continue;
        };
        let m = |f: fn(&Metrics) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        match scenario.load {
            Load::Publish { .. } => {
                let rates: Vec<f64> = runs.iter().map(|x| x.events_per_s).collect();
                let lo = rates.iter().copied().fold(f64::MAX, f64::min);
                let hi = rates.iter().copied().fold(f64::MIN, f64::max);
                out.push_str(&format!(
                    "| {} | {:.0} [{lo:.0}–{hi:.0}] | {:.1} | {:.1} | {:.0}% |\n",
                    kind.name(),
                    m(|x| x.events_per_s),
                    m(|x| x.cpu_us_per_event),
                    m(|x| x.redis_cpu_us_per_event),
                    m(|x| x.redis_busiest_share) * 100.0,
                ));
            }
            Load::Recover { missed, .. } => {
                let p50 = m(|x| x.p50);
                out.push_str(&format!(
                    "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
                    kind.name(),
                    p50 / 1000.0,
                    m(|x| x.p99) / 1000.0,
                    m(|x| x.max) / 1000.0,
                    missed as f64 / (p50 / 1e6),
                    m(|x| x.cpu_us_per_event),
                ));
            }
            _ => {}
        }
    }
    out
}
