//! Adaptive concurrency against a dependency that loses half its capacity.
//!
//! A simulated server serves 40 calls at once at 100 ms; beyond that, latency grows with the
//! concurrency it is given. Half-way through the run it drops to 20 workers. Traffic arrives
//! at 500 calls per second whatever happens (1.25× the first capacity, 2.5× the second), each
//! call with a 250 ms attempt timeout, through a bulkhead that either holds a fixed limit of
//! 40 (right for the first half) or finds its limit with Gradient, Vegas or AIMD. The whole
//! minute runs on tokio's paused clock in well under a second.
//!
//! It prints one row per limit and writes `docs/adaptive.svg`: the limit over time, and
//! the calls served per second against the server's capacity.
//!
//! ```sh
//! cargo run --release --example adaptive_concurrency                   # writes docs/adaptive.svg
//! cargo run --release --example adaptive_concurrency -- out.svg        # or where you say
//! ```

#[path = "support/adaptive_sim.rs"]
mod sim;

use riprap::bulkhead::Bulkhead;
use sim::{BASE, HALVES_AT, RUN, Report, contenders, table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let wall = std::time::Instant::now();
    let unloaded = runtime.block_on(sim::run(
        "unloaded",
        Bulkhead::builder().max_concurrent(1_000),
        20.0,
        1,
    ));
    let mut reports = Vec::new();
    for (name, builder) in contenders()? {
        reports.push(runtime.block_on(sim::run(name, builder, sim::OFFERED_PER_SEC, 1)));
    }

    println!(
        "Adaptive concurrency: {} calls/s offered to a server of 40 workers at {} ms,\n\
         halved to 20 at {} s; {} ms attempt timeout; {} s on a paused clock.\n",
        sim::OFFERED_PER_SEC,
        BASE.as_millis(),
        HALVES_AT.as_secs(),
        sim::ATTEMPT_TIMEOUT.as_millis(),
        RUN.as_secs(),
    );
    let unloaded_p99 = unloaded.percentile(0.99);
    println!(
        "unloaded latency: p50 {} ms, p99 {} ms\n",
        unloaded.percentile(0.5).as_millis(),
        unloaded_p99.as_millis()
    );
    print!("{}", table(&reports, unloaded_p99));

    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/adaptive.svg".to_string());
    std::fs::write(&path, chart(&reports))?;
    println!("\nChart of the limit and of the calls served per second: {path}");
    println!(
        "(simulated in {:.1} s of real time)",
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

/// A dependency-free SVG: the limit over time (top) and the calls served per second against
/// capacity (bottom).
fn chart(reports: &[Report]) -> String {
    let (w, panel, pad) = (900.0_f64, 260.0_f64, 48.0_f64);
    let h = 2.0 * panel + 40.0;
    let secs = RUN.as_secs_f64();
    let x = |s: f64| pad + s / secs * (w - 2.0 * pad);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"##
    );
    // Top panel: the limit, against the server's workers.
    let top = |v: f64, max: f64| 30.0 + (panel - pad) * (1.0 - v / max);
    let lmax = reports
        .iter()
        .flat_map(|r| r.limits.iter().copied())
        .max()
        .unwrap_or(1)
        .max(60) as f64;
    svg.push_str(&format!(
        "<text x=\"{pad}\" y=\"18\" font-size=\"14\">Concurrency limit (server workers dashed: 40, then 20)</text>\n"
    ));
    let half = x(HALVES_AT.as_secs_f64());
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#888\" stroke-dasharray=\"4 4\" points=\"{:.1},{:.1} {half:.1},{:.1} {half:.1},{:.1} {:.1},{:.1}\"/>\n",
        x(0.0),
        top(40.0, lmax),
        top(40.0, lmax),
        top(20.0, lmax),
        x(secs),
        top(20.0, lmax)
    ));
    for (i, r) in reports.iter().enumerate() {
        let pts: Vec<String> = r
            .limits
            .iter()
            .enumerate()
            .map(|(t, v)| {
                format!(
                    "{:.1},{:.1}",
                    x(t as f64 * sim::TICK.as_secs_f64()),
                    top(f64::from(*v), lmax)
                )
            })
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.4\" points=\"{}\"/>\n",
            COLORS[i % COLORS.len()],
            pts.join(" ")
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>\n",
            w - pad - 150.0,
            40.0 + 16.0 * i as f64,
            COLORS[i % COLORS.len()],
            r.name
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
        top(0.0, lmax),
        w - pad,
        top(0.0, lmax)
    ));
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
        pad - 4.0,
        top(lmax, lmax) + 4.0,
        lmax as u32
    ));
    // Bottom panel: calls served per second, against capacity.
    let y0 = panel + 20.0;
    let bottom = |v: f64, max: f64| y0 + 20.0 + (panel - pad) * (1.0 - v / max);
    let cmax = 450.0;
    svg.push_str(&format!(
        "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"14\">Calls served per second (capacity dashed: 400, then 200)</text>\n",
        y0 + 8.0
    ));
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#888\" stroke-dasharray=\"4 4\" points=\"{:.1},{:.1} {half:.1},{:.1} {half:.1},{:.1} {:.1},{:.1}\"/>\n",
        x(0.0),
        bottom(400.0, cmax),
        bottom(400.0, cmax),
        bottom(200.0, cmax),
        x(secs),
        bottom(200.0, cmax)
    ));
    for (i, r) in reports.iter().enumerate() {
        let pts: Vec<String> = r
            .ok_per_sec
            .iter()
            .take(RUN.as_secs() as usize)
            .enumerate()
            .map(|(s, v)| {
                format!(
                    "{:.1},{:.1}",
                    x(s as f64 + 0.5),
                    bottom(f64::from(*v), cmax)
                )
            })
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.4\" points=\"{}\"/>\n",
            COLORS[i % COLORS.len()],
            pts.join(" ")
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
        bottom(0.0, cmax),
        w - pad,
        bottom(0.0, cmax)
    ));
    for s in (0..=RUN.as_secs()).step_by(10) {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{s} s</text>\n",
            x(s as f64),
            bottom(0.0, cmax) + 16.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
