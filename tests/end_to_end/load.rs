//! Load: many starts of the numpy probe app at once (bounded: this is a 2-core machine), and a
//! fork-heavy `multiprocessing.Pool` whose workers must share the parent's memory files.
//! Both print their figures (run with `--nocapture` to see them).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyferry_tests::{run, run_with_timeout, Finished};

use crate::native::{natives_app, NUMPY_EXPECTED};

const STARTS: usize = 200;
const AT_ONCE: usize = 20;

/// `MemAvailable` from `/proc/meminfo`, in KiB.
fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn two_hundred_starts_at_most_twenty_at_once() {
    let app = natives_app();
    run(Command::new(app).arg("numpy")).success(); // warm the page cache
    let baseline = mem_available_kib();
    let lowest = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (lowest, done) = (Arc::clone(&lowest), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                lowest.fetch_min(mem_available_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(Duration, Option<Finished>)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < STARTS {
                    let begun = Instant::now();
                    let finished = run_with_timeout(
                        Command::new(app).args(["numpy", "hwm"]),
                        Duration::from_secs(120),
                    );
                    results
                        .lock()
                        .expect("results")
                        .push((begun.elapsed(), finished));
                }
            });
        }
    });
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let results = results.into_inner().expect("results");
    assert_eq!(results.len(), STARTS);
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    for (took, finished) in &results {
        let finished = finished.as_ref().expect("a start hung for two minutes");
        assert_eq!(finished.code, Some(0), "{finished:#?}");
        let lines: Vec<&str> = finished.stdout.lines().collect();
        assert_eq!(&lines[..lines.len() - 1], NUMPY_EXPECTED, "{finished:#?}");
        let hwm: f64 = lines[lines.len() - 1]
            .strip_prefix("hwm ")
            .and_then(|kib| kib.parse().ok())
            .expect("the probe's peak RSS line");
        peaks.push(hwm / 1024.0);
        walls.push(took.as_secs_f64() * 1000.0);
    }
    let max_peak = peaks.iter().copied().fold(0.0, f64::max);
    let max_wall = walls.iter().copied().fold(0.0, f64::max);
    let system_peak = baseline.saturating_sub(lowest.load(Ordering::Relaxed)) as f64 / 1024.0;
    eprintln!(
        "{STARTS} starts of the numpy app, at most {AT_ONCE} at once: all exited 0 with the right output\n  \
         wall time {:.2} s ({:.1} starts/s); per start median {:.0} ms, max {:.0} ms\n  \
         peak RSS per process (VmHWM) median {:.1} MiB, max {:.1} MiB\n  \
         peak memory in use on the machine during the run, above the baseline: {:.0} MiB",
        wall.as_secs_f64(),
        STARTS as f64 / wall.as_secs_f64(),
        median(&mut walls),
        max_wall,
        median(&mut peaks),
        max_peak,
        system_peak,
    );
}

const FIELDS: [&str; 6] = [
    "Rss",
    "Pss",
    "Shared_Clean",
    "Shared_Dirty",
    "Private_Clean",
    "Private_Dirty",
];

/// Runs the probe's fork-pool check and returns, per worker, the kB of each smaps field summed
/// over its mappings of memory files.
fn pool_smaps(check: &str, prefetch: bool) -> Vec<serde_json::Value> {
    let mut command = Command::new(natives_app());
    command.arg(check);
    if !prefetch {
        command.env("PYFERRY_PREFETCH", "0");
    }
    let finished = run(&mut command).success();
    let mut lines = finished.stdout.lines();
    assert_eq!(lines.next(), Some("workers 8"), "{finished:#?}");
    let smaps = lines
        .next()
        .and_then(|line| line.strip_prefix("smaps "))
        .expect("the smaps line");
    serde_json::from_str::<Vec<serde_json::Value>>(smaps).expect("JSON")
}

/// Prints one worker line per measurement and returns each worker's shared fraction of its
/// resident memory-file pages.
fn report(title: &str, workers: &[serde_json::Value]) -> Vec<f64> {
    eprintln!(
        "{title} (kB of memory-file mappings, per worker: {})",
        FIELDS.join(" ")
    );
    workers
        .iter()
        .map(|worker| {
            let field = |name: &str| worker[name].as_f64().expect("a number");
            eprintln!(
                "  {}",
                FIELDS
                    .iter()
                    .map(|name| format!("{:>6}", field(name)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let shared = field("Shared_Clean") + field("Shared_Dirty");
            // Page sharing leaves about 1 MB of numpy's objects in memory files (headers,
            // writable data); the rest is mapped from the executable.
            assert!(
                field("Rss") > 256.0,
                "numpy's libraries are not mapped: {worker}"
            );
            shared / field("Rss")
        })
        .collect()
}

#[test]
fn fork_pool_workers_share_the_parents_memory_files() {
    // The parent imports numpy, then forks 8 workers: their mappings of numpy's memory files
    // are the parent's pages.
    let shared = report(
        "Pool(8) of fork workers, numpy imported by the parent",
        &pool_smaps("forkpool", true),
    );
    for fraction in &shared {
        assert!(
            *fraction >= 0.9,
            "a worker shares only {:.0}% of its memory-file pages",
            fraction * 100.0
        );
    }
    // Control: when numpy is first imported in the workers (and not prefetched by the parent),
    // each worker makes memory files of its own; the same measure must see them unshared.
    let unshared = report(
        "control: numpy imported by each worker, PYFERRY_PREFETCH=0",
        &pool_smaps("forkpool_late", false),
    );
    for fraction in &unshared {
        assert!(*fraction < 0.5, "the control shows sharing: {fraction}");
    }
    report(
        "numpy imported by each worker, prefetched by the parent (default)",
        &pool_smaps("forkpool_late", true),
    );
}
