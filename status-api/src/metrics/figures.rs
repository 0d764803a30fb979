//! What one scrape of `/metrics` costs at 100 and 1,000 containers — series, bytes, and the time to render
//! them — with and without the per-container series: the figures of docs/fleet.md, printed as a table.
//!
//! ```sh
//! cargo test -p status-api --lib scrape_figures -- --nocapture             # debug build: slow timings
//! cargo test -p status-api --lib --release scrape_figures -- --nocapture   # the figures in docs/fleet.md
//! ```

use std::time::{Duration, Instant};

use shared::ContainerState;

use super::synthetic::{Host, Made};
use super::Metrics;

/// Renders timed per size and switch; the median is printed.
const RENDERS: usize = 31;

/// One row of the table.
struct Figures {
    containers: usize,
    per_container: bool,
    series: usize,
    bytes: usize,
    median: Duration,
}

/// `containers` containers, every one a member; every tenth has exited (a `stopped` drift).
fn host_of(containers: usize) -> Host {
    let names: Vec<String> = (0..containers).map(|i| format!("app-{i:04}")).collect();
    let members: Vec<&str> = names.iter().map(String::as_str).collect();
    let made: Vec<Made> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let state = if i % 10 == 0 {
                ContainerState::Exited
            } else {
                ContainerState::Running
            };
            Made::new(name.clone(), state)
        })
        .collect();
    Host::new(&members, &made)
}

fn measure(host: &Host, containers: usize, per_container: bool) -> Figures {
    let metrics = Metrics::new().with_container_series(per_container);
    // What a pair in service has been asked: the controller's long poll and snapshot reads, the probes, the
    // scrape itself. Each (method, route, status) adds its counter and histogram.
    for route in ["/status", "/snapshot", "/health", "/ready", "/metrics"] {
        let route = super::ROUTES
            .iter()
            .position(|known| *known == route)
            .expect("a route");
        metrics.observe_request("GET", route, 200, Duration::from_millis(1));
    }
    let store = host.store();
    let mut times = Vec::with_capacity(RENDERS);
    let mut text = String::new();
    for _ in 0..RENDERS {
        let started = Instant::now();
        text = metrics.render(&store);
        times.push(started.elapsed());
    }
    times.sort();
    Figures {
        containers,
        per_container,
        series: text.lines().filter(|line| !line.starts_with('#')).count(),
        bytes: text.len(),
        median: times[RENDERS / 2],
    }
}

#[test]
fn scrape_figures_at_100_and_1000_containers() {
    let mut rows = Vec::new();
    for containers in [100, 1000] {
        let host = host_of(containers);
        rows.push(measure(&host, containers, false));
        rows.push(measure(&host, containers, true));
    }
    println!(
        "| containers | per-container series | series | bytes | render (median of {RENDERS}) |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} ms |",
            row.containers,
            if row.per_container { "on" } else { "off" },
            row.series,
            row.bytes,
            row.median.as_secs_f64() * 1000.0
        );
    }

    // Off, a scrape is the same whatever the number of containers; on, it grows by one series per container
    // and two per drift (here one container in ten), and by no more than 200 bytes a container.
    let base = rows[0].series;
    for row in &rows {
        let expected = if row.per_container {
            base + row.containers + 2 * (row.containers / 10)
        } else {
            base
        };
        assert_eq!(row.series, expected, "{} containers", row.containers);
    }
    assert!(
        rows[2].bytes.abs_diff(rows[0].bytes) < 64,
        "off, the size does not grow"
    );
    let per_container = (rows[3].bytes - rows[2].bytes) as f64 / 1000.0;
    assert!(per_container < 200.0, "{per_container} bytes a container");
    assert!(
        rows[3].median < Duration::from_secs(1),
        "rendering 1,000 containers took {:?}",
        rows[3].median
    );
}
