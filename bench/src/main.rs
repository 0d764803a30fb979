//! `make bench`: what it costs to run dockstate and how fast it heals, measured against Docker itself.
//!
//! One run, on the local engine, with its own scoped workload (label `dockstate.test=<id>`, removed at the
//! end even on failure): heal latency against `--restart always`, unexpected → stopped and removed →
//! recreated latencies, the engine's own floors, `/status` throughput and latency at 10/100/1,000 containers
//! beside the engine's list call and nginx serving the same bytes, resident memory, time to ready, image
//! sizes, and whether the view keeps up under churn (engine event → `/status`). Prints one table and writes
//! JSON. Then many drifts at once: 50 members killed together against 50 `--restart always` containers,
//! and 30 unexpected containers with a 1 s stop timeout started together. `--only
//! heal|serve|churn|mass-heal|mass-stop|synthetic` runs one part; `synthetic` (status-api against a synthetic
//! engine of 1,000 to 20,000 containers) runs only when asked for.

mod churn;
mod engine;
mod heal;
mod mass;
mod procs;
mod serve;
mod stats;
mod synthetic;
mod trace;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

const USAGE: &str = "usage: bench [--trials N] [--sizes 10,100,1000] [--bin-dir DIR] [--out FILE] \
[--wrk-seconds N] [--only PART] [--containers N] [--rate R] [--churn-seconds S] [--mass-heal N] \
[--mass-stop N] [--rounds N] [--synthetic-sizes N,N] [--synthetic-rates R,R] [--synthetic-seconds S] [--synthetic-serve SOCKET]
  --trials         heal trials per measurement (20)
  --sizes          container counts for the /status throughput runs (10,100,1000)
  --bin-dir        where the release binaries of status-api and status-controller are (target/release)
  --out            the JSON results (target/bench/results.json)
  --wrk-seconds    seconds of wrk load per size (5)
  --only           run one part: heal, serve, churn, mass-heal, mass-stop or synthetic (only when named)
  --containers     churn: containers created (1000)
  --rate           churn: start/stop operations per second (35)
  --churn-seconds  churn: seconds of churn (30)
  --mass-heal      mass-heal: members killed at once, and as many `--restart always` containers (50)
  --mass-stop      mass-stop: unexpected containers started at once (30)
  --rounds         mass-heal and mass-stop: rounds, each on fresh containers (3)
  --synthetic-sizes    synthetic: containers on the synthetic engine, one run each (1000,5000,20000)
  --synthetic-rates    synthetic: events per second, one phase each (100,500,2000)
  --synthetic-seconds  synthetic: seconds of events per rate (10)
  --synthetic-serve    synthetic: only serve the engine on this unix socket (the first size and rate), until
                       Ctrl-C, for a status-api run by hand";

/// What `make bench` passes.
#[derive(Debug)]
struct Args {
    trials: usize,
    sizes: Vec<usize>,
    bin_dir: PathBuf,
    out: PathBuf,
    wrk_seconds: u32,
    /// Run only this part (`heal`, `serve` or `churn`); all of them when `None`.
    only: Option<String>,
    churn: churn::Churn,
    mass: mass::Mass,
    synthetic: synthetic::Synthetic,
    /// `--synthetic-serve`: the socket to serve the synthetic engine on, and nothing else.
    synthetic_serve: Option<PathBuf>,
}

const PARTS: [&str; 6] = [
    "heal",
    "serve",
    "churn",
    "mass-heal",
    "mass-stop",
    "synthetic",
];

/// Numbers separated by commas, e.g. `1000,5000,20000`.
fn list<T: std::str::FromStr>(value: &str, flag: &str) -> anyhow::Result<Vec<T>> {
    value
        .split(',')
        .map(|item| item.trim().parse())
        .collect::<Result<Vec<T>, _>>()
        .map_err(|_| {
            anyhow::anyhow!(
                "{flag} takes numbers separated by commas, e.g. 100,500,2000, not {value}"
            )
        })
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        trials: 20,
        sizes: vec![10, 100, 1000],
        bin_dir: PathBuf::from("target/release"),
        out: PathBuf::from("target/bench/results.json"),
        wrk_seconds: 5,
        only: None,
        churn: churn::Churn {
            containers: 1000,
            rate: 35.0,
            seconds: 30,
        },
        mass: mass::Mass {
            heal: 50,
            stop: 30,
            rounds: 3,
        },
        synthetic: synthetic::Synthetic {
            sizes: vec![1000, 5000, 20000],
            rates: vec![100.0, 500.0, 2000.0],
            seconds: 10,
        },
        synthetic_serve: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--trials" => {
                args.trials = value()?.parse().context("--trials takes a whole number")?
            }
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|size| size.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--sizes takes numbers like 10,100,1000")?;
            }
            "--bin-dir" => args.bin_dir = PathBuf::from(value()?),
            "--out" => args.out = PathBuf::from(value()?),
            "--wrk-seconds" => {
                args.wrk_seconds = value()?
                    .parse()
                    .context("--wrk-seconds takes a whole number")?
            }
            "--only" => {
                let part = value()?;
                anyhow::ensure!(
                    PARTS.contains(&part.as_str()),
                    "--only takes one of {}, not {part}",
                    PARTS.join(", ")
                );
                args.only = Some(part);
            }
            "--containers" => {
                args.churn.containers = value()?
                    .parse()
                    .context("--containers takes a whole number")?
            }
            "--rate" => {
                args.churn.rate = value()?
                    .parse()
                    .context("--rate takes start/stop operations per second, e.g. 35")?
            }
            "--churn-seconds" => {
                args.churn.seconds = value()?
                    .parse()
                    .context("--churn-seconds takes a whole number")?
            }
            "--mass-heal" => {
                args.mass.heal = value()?
                    .parse()
                    .context("--mass-heal takes a whole number")?
            }
            "--mass-stop" => {
                args.mass.stop = value()?
                    .parse()
                    .context("--mass-stop takes a whole number")?
            }
            "--rounds" => {
                args.mass.rounds = value()?.parse().context("--rounds takes a whole number")?
            }
            "--synthetic-sizes" => args.synthetic.sizes = list(&value()?, "--synthetic-sizes")?,
            "--synthetic-rates" => {
                args.synthetic.rates = list(&value()?, "--synthetic-rates")?;
                anyhow::ensure!(
                    args.synthetic
                        .rates
                        .iter()
                        .all(|rate| *rate > 0.0 && rate.is_finite()),
                    "--synthetic-rates takes rates above 0"
                );
            }
            "--synthetic-seconds" => {
                args.synthetic.seconds = value()?
                    .parse()
                    .context("--synthetic-seconds takes a whole number")?
            }
            "--synthetic-serve" => args.synthetic_serve = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if let Some(socket) = &args.synthetic_serve {
        let size = args.synthetic.sizes.first().copied().unwrap_or(1000);
        let rate = args.synthetic.rates.first().copied().unwrap_or(100.0);
        return synthetic::serve_only(socket, size, rate).await;
    }
    if args.only.as_deref() == Some("synthetic") {
        return synthetic_only(&args).await;
    }
    // The churn runs status-api alone.
    let needed: &[&str] = if args.only.as_deref() == Some("churn") {
        &["status-api"]
    } else {
        &["status-api", "status-controller"]
    };
    for binary in needed {
        let path = args.bin_dir.join(binary);
        anyhow::ensure!(
            path.exists(),
            "{} is missing: run `make bench`, which builds it",
            path.display()
        );
    }
    test_support::ensure_test_images().await?;
    let docker = engine::connect().await?;
    let started = chrono::Utc::now();

    let runs = |part: &str| args.only.as_deref().is_none_or(|only| only == part);
    let mut heal = serde_json::Value::Null;
    let mut serve = serde_json::Value::Null;
    let mut churn = serde_json::Value::Null;
    let mut mass_heal = serde_json::Value::Null;
    let mut mass_stop = serde_json::Value::Null;
    if runs("heal") {
        eprintln!("== heal latency ({} trials each)", args.trials);
        heal = heal::run(&docker, &args.bin_dir, args.trials).await?;
    }
    if runs("serve") {
        eprintln!("== /status at {:?} containers", args.sizes);
        serve = serve::run(&docker, &args.bin_dir, &args.sizes, args.wrk_seconds).await?;
    }
    if runs("churn") {
        eprintln!(
            "== churn: {} containers, {}/s for {}s",
            args.churn.containers, args.churn.rate, args.churn.seconds
        );
        churn = churn::run(&docker, &args.bin_dir, args.churn).await?;
    }
    if runs("mass-heal") {
        eprintln!(
            "== mass heal: {} members killed at once, {} rounds",
            args.mass.heal, args.mass.rounds
        );
        mass_heal = mass::heal(&docker, &args.bin_dir, args.mass).await?;
    }
    if runs("mass-stop") {
        eprintln!(
            "== mass stop: {} unexpected started at once, {} rounds",
            args.mass.stop, args.mass.rounds
        );
        mass_stop = mass::stop(&docker, &args.bin_dir, args.mass).await?;
    }
    let images = image_sizes().await;

    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "engine": engine::version(&docker).await.unwrap_or_default(),
    });
    let command = match &args.only {
        Some(part) => format!("make bench BENCH_ARGS=\"--only {part}\""),
        None => "make bench".to_owned(),
    };
    let fresh = json!({
        "date": started.to_rfc3339(),
        "machine": machine,
        "command": command,
        "heal": heal,
        "serve": serve,
        "churn": churn,
        "mass_heal": mass_heal,
        "mass_stop": mass_stop,
        "images": images,
    });
    println!("{}", stats::table(&fresh));
    // Parts this run left out (`--only`) keep what an earlier run wrote, each with the date it was measured.
    let mut results = earlier_results(&args.out);
    for (key, value) in fresh.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        results[key] = value.clone();
        if let Some(part) = results[key].as_object_mut().filter(|_| key != "machine") {
            part.insert("measured_at".to_owned(), json!(started.to_rfc3339()));
        }
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("JSON written to {}", args.out.display());
    Ok(())
}

/// `--only synthetic`: no Docker engine needed. Its rows go under `"synthetic"` in the results file, beside
/// what an earlier run of the other parts wrote there.
async fn synthetic_only(args: &Args) -> anyhow::Result<()> {
    for binary in ["status-api", "status-controller"] {
        let path = args.bin_dir.join(binary);
        anyhow::ensure!(
            path.exists(),
            "{} is missing: run `make bench`, which builds it",
            path.display()
        );
    }
    let started = chrono::Utc::now();
    eprintln!(
        "== synthetic engine: {:?} containers, {:?} events/s, {} s each",
        args.synthetic.sizes, args.synthetic.rates, args.synthetic.seconds
    );
    let rows = synthetic::run(&args.bin_dir, &args.synthetic).await?;
    let mut results = earlier_results(&args.out);
    results["synthetic"] = rows;
    results["synthetic_run"] = json!({
        "date": started.to_rfc3339(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "command": "make bench BENCH_ARGS=\"--only synthetic\"",
    });
    println!("{}", synthetic::table(&results["synthetic"]));
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("JSON written to {}", args.out.display());
    Ok(())
}

/// What an earlier run wrote to `path`, or an empty object.
fn earlier_results(path: &Path) -> serde_json::Value {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// Sizes of the two images, if `make images` built them.
async fn image_sizes() -> serde_json::Value {
    let mut sizes = serde_json::Map::new();
    for image in [
        "dockstate/status-api:latest",
        "dockstate/status-controller:latest",
    ] {
        let size = test_support::docker(&["image", "inspect", "--format", "{{.Size}}", image])
            .await
            .ok()
            .and_then(|out| out.trim().parse::<u64>().ok());
        sizes.insert(image.to_owned(), json!(size));
    }
    serde_json::Value::Object(sizes)
}
