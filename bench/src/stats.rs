//! Percentiles, and the one table the run prints.

use std::time::Duration;

use serde_json::{json, Value};

/// p50, p90, p95, p99, max (and the count) of some durations, in milliseconds.
pub fn summary(samples: &[Duration]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if ms.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    json!({
        "n": ms.len(),
        "p50_ms": round(pick(0.50)),
        "p90_ms": round(pick(0.90)),
        "p95_ms": round(pick(0.95)),
        "p99_ms": round(pick(0.99)),
        "max_ms": round(ms.last().copied().unwrap_or(f64::NAN)),
    })
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn num(value: &Value) -> String {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 => format!("{n:.0}"),
        Some(n) => format!("{n:.1}"),
        None => "n/a".to_owned(),
    }
}

fn mib(bytes: &Value) -> String {
    bytes
        .as_f64()
        .map(|b| format!("{:.1} MiB", b / 1024.0 / 1024.0))
        .unwrap_or_else(|| "n/a".to_owned())
}

/// The Markdown table the README carries.
pub fn table(results: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "dockstate benchmark — {} — {} cores, Docker {}\n\n",
        results["date"].as_str().unwrap_or_default(),
        results["machine"]["cores"],
        results["machine"]["engine"].as_str().unwrap_or_default()
    ));
    if !results["heal"].is_null() || !results["serve"].is_null() {
        heal_and_serve(results, &mut out);
    }
    if !results["churn"].is_null() {
        churn(&results["churn"], &mut out);
    }
    if !results["mass_heal"].is_null() {
        mass_heal(&results["mass_heal"], &mut out);
    }
    if !results["mass_stop"].is_null() {
        mass_stop(&results["mass_stop"], &mut out);
    }
    out
}

/// A ratio to two decimals: 1.0 is a tie.
fn ratio(value: &Value) -> String {
    value
        .as_f64()
        .map(|r| format!("{r:.2}"))
        .unwrap_or_else(|| "n/a".to_owned())
}

/// One table row: `| label | n | p50 | max |`.
fn row(label: &str, summary: &Value) -> String {
    format!(
        "| {label} | {} | {} | {} |\n",
        summary["n"],
        num(&summary["p50_ms"]),
        num(&summary["max_ms"])
    )
}

/// Many members killed at once: all running again, dockstate against `--restart always`.
fn mass_heal(mass: &Value, out: &mut String) {
    out.push_str(&format!(
        "\nmass heal: {} killed at once (kill -9 from the host), {} rounds; ratio dockstate / --restart always: \
         {} at p50, {} at worst\n\n| kill → (ms) | n | p50 | max |\n|---|---|---|---|\n",
        mass["members"],
        mass["rounds"],
        ratio(&mass["ratio_p50"]),
        ratio(&mass["ratio_max"]),
    ));
    out.push_str(&row(
        "all running, dockstate",
        &mass["dockstate_all_running"],
    ));
    out.push_str(&row(
        "all running, --restart always",
        &mass["docker_restart_all_running"],
    ));
    out.push_str(&row("each running, dockstate", &mass["dockstate_each"]));
    out.push_str(&row(
        "each running, --restart always",
        &mass["docker_restart_each"],
    ));
    let stages = &mass["dockstate_stages"];
    out.push_str("\n| each member's stage (ms) | n | p50 | max |\n|---|---|---|---|\n");
    for (label, key) in [
        ("die → status-api reads the event", "die_to_event"),
        (
            "event → status-api's inspect answered (settling until then)",
            "event_to_inspected",
        ),
        (
            "die → start dispatched (the above, long poll, plan)",
            "die_to_dispatched",
        ),
        ("dispatched → heal lane free", "dispatched_to_lane"),
        ("lane → re-check inspect answered", "lane_to_rechecked"),
        ("re-checked → engine `start` event", "rechecked_to_start"),
    ] {
        out.push_str(&row(label, &stages[key]));
    }
    out.push_str(&row(
        "--restart always: die → start",
        &mass["docker_restart_die_to_start"],
    ));
    out.push_str(&format!(
        "\nratio per round: {}\nlast member healed, per round: {}\ncontroller holds per round: {}\n",
        mass["ratio_per_round"], stages["last_member_per_round"], mass["controller_holds_per_round"]
    ));
}

/// Many unexpected containers at once, each stop waiting out its stop timeout.
fn mass_stop(mass: &Value, out: &mut String) {
    out.push_str(&format!(
        "\nmass stop: {} unexpected started at once, SIGTERM ignored, {} s stop timeout, {} rounds\n\n\
         | (ms) | n | p50 | max |\n|---|---|---|---|\n",
        mass["unexpected"], mass["stop_timeout_s"], mass["rounds"],
    ));
    out.push_str(&row(
        "first start → all stopped",
        &mass["first_start_to_all_stopped"],
    ));
    out.push_str(&row(
        "worst start → stopped, per round",
        &mass["worst_start_to_stopped"],
    ));
    out.push_str(&row("each start → stopped", &mass["each_start_to_stopped"]));
    out.push_str(&row(
        "each start → stop dispatched by the controller",
        &mass["each_start_to_stop_dispatched"],
    ));
    out.push_str(&row(
        "each dispatched → re-check inspect answered",
        &mass["each_dispatched_to_rechecked"],
    ));
    out.push_str(&row(
        "each re-checked → stopped (the engine's stop)",
        &mass["each_rechecked_to_stopped"],
    ));
    out.push_str(&format!(
        "\ncontroller holds per round: {}\n",
        mass["controller_holds_per_round"]
    ));
}

/// The view under churn: engine event → visible in a `/status` long poll.
fn churn(churn: &Value, out: &mut String) {
    let latency = &churn["event_to_status"];
    out.push_str(&format!(
        "\nchurn: {} containers, {} start/stop per second for {}s ({} operations, {} failed, {} ticks skipped; {} watched events/s)\n\n\
         | engine event → /status (ms) | n | p50 | p99 | max | never seen |\n|---|---|---|---|---|---|\n\
         | start, die | {} | {} | {} | {} | {} |\n\n\
         status-api's own dockstate_event_lag_seconds: {} events, {}% applied within 250 ms, {}% within 1 s\n",
        churn["containers"],
        num(&churn["rate"]),
        churn["seconds"],
        churn["operations"],
        churn["failed_operations"],
        churn["skipped_ticks"],
        num(&churn["watched_events_per_second"]),
        latency["n"],
        num(&latency["p50_ms"]),
        num(&latency["p99_ms"]),
        num(&latency["max_ms"]),
        churn["unseen"],
        churn["status_api_lag"]["observations"],
        num(&churn["status_api_lag"]["percent_within_250ms"]),
        num(&churn["status_api_lag"]["percent_within_1s"]),
    ));
}

/// Where one heal's time goes, milestone by milestone (medians over the traced trials).
fn breakdown(breakdown: &Value, out: &mut String) {
    let Some(steps) = breakdown["steps"].as_array() else {
        return;
    };
    out.push_str(&format!(
        "\none heal, traced ({} of {} trials complete): p50 of each milestone\n\n\
         | milestone | since kill (ms) | step (ms) |\n|---|---|---|\n",
        breakdown["traced"], breakdown["trials"]
    ));
    for step in steps {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            step["milestone"].as_str().unwrap_or_default(),
            num(&step["p50_since_kill_ms"]),
            num(&step["p50_step_ms"]),
        ));
    }
    out.push('\n');
}

fn heal_and_serve(results: &Value, out: &mut String) {
    if !results["heal"].is_null() {
        heal(&results["heal"], out);
    }
    if !results["serve"].is_null() {
        serve(&results["serve"], out);
    }
    for (image, size) in results["images"].as_object().into_iter().flatten() {
        out.push_str(&format!("image {image}: {}\n", mib(size)));
    }
}

fn heal(heal: &Value, out: &mut String) {
    out.push_str("| latency (ms) | n | p50 | p90 | p95 | max |\n|---|---|---|---|---|---|\n");
    for (label, key) in [
        ("kill -9 → running: dockstate", "dockstate"),
        (
            "kill -9 → running: Docker `--restart always`",
            "docker_restart",
        ),
        ("unexpected → stopped", "unexpected_stopped"),
        ("removed → recreated and running", "removed_recreated"),
        ("floor: engine start call", "start_call"),
        (
            "floor: kill -9 → running, started the moment `die` arrives",
            "start_at_die",
        ),
        ("floor: kill → `die` event", "kill_to_die"),
    ] {
        let row = &heal[key];
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            row["n"],
            num(&row["p50_ms"]),
            num(&row["p90_ms"]),
            num(&row["p95_ms"]),
            num(&row["max_ms"])
        ));
    }
    out.push_str(&format!(
        "\nheal ratio, dockstate / Docker restart policy: **{}** at p50 (target ≤ 0.80), **{}** at p90 (target ≤ 0.9)\n",
        ratio(&heal["ratio_p50"]),
        ratio(&heal["ratio_p90"]),
    ));
    out.push_str(&format!(
        "floor ratio at p50 (a start sent the moment `die` arrives / Docker restart policy): {}\n",
        ratio(&heal["floor_ratio_p50"]),
    ));
    breakdown(&heal["breakdown"], out);
}

fn serve(serve: &Value, out: &mut String) {
    out.push_str(
        "| containers | /status?all=true req/s | p50 | p99 | engine list req/s | engine p99 | nginx req/s | nginx p99 | vs nginx |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in serve["sizes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} ms | {} ms | {} | {} ms | {} | {} ms | {}× |\n",
            row["containers"],
            num(&row["status"]["rps"]),
            num(&row["status"]["p50_ms"]),
            num(&row["status"]["p99_ms"]),
            num(&row["engine_list"]["rps"]),
            num(&row["engine_list"]["p99_ms"]),
            num(&row["nginx"]["rps"]),
            num(&row["nginx"]["p99_ms"]),
            num(&row["ratio_to_nginx"]),
        ));
    }
    let polls = &serve["long_polls"];
    out.push_str(&format!(
        "\nat {} containers (targets: status-api < 20 MiB with 200 long polls parked, status-controller < 15 MiB):\n\
         - status-api: {} resident at the end; {} with {} long polls parked, {} after all were answered at once, \
         peak {}\n\
         - status-controller: {} resident after a pass, peak {}\n\
         - start → /ready: {} ms\n",
        serve["largest"],
        mib(&serve["rss_bytes"]["status_api"]),
        mib(&polls["rss_bytes_parked"]),
        polls["parked"],
        mib(&polls["rss_bytes_after_answers"]),
        mib(&serve["peak_rss_bytes"]["status_api"]),
        mib(&serve["rss_bytes"]["status_controller"]),
        mib(&serve["peak_rss_bytes"]["status_controller"]),
        num(&serve["ready_ms"]),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        let s = summary(&samples);
        assert_eq!(s["p50_ms"], 10.0);
        assert_eq!(s["p95_ms"], 19.0);
        assert_eq!(s["max_ms"], 20.0);
        assert_eq!(s["n"], 20);
    }
}
