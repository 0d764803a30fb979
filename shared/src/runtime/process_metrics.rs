//! The `process_*` metrics of both programs. The prometheus crate's collector counts CPU time in whole
//! seconds (an integer counter fed clock ticks divided by the tick rate), so a process that has used 0.9 s
//! shows 0 and a rate over a minute jumps in steps of one second; this one reports it to the microsecond,
//! from `getrusage`, and keeps the crate's collector for the rest (memory, descriptors, threads, start time).

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::Counter;

const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// The process collector, with `process_cpu_seconds_total` as a float.
pub struct ProcessMetrics {
    inner: ProcessCollector,
    cpu: Counter,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics").finish_non_exhaustive()
    }
}

impl ProcessMetrics {
    /// The metrics of this process.
    pub fn for_self() -> Self {
        let inner = ProcessCollector::for_self();
        let cpu = Counter::new(
            CPU_SECONDS,
            "Total user and system CPU time spent in seconds.",
        )
        .expect("valid metric");
        let descs = inner
            .desc()
            .into_iter()
            .filter(|desc| desc.fq_name != CPU_SECONDS)
            .chain(cpu.desc())
            .cloned()
            .collect();
        Self { inner, cpu, descs }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(used) = cpu_seconds() {
            // A counter only rises; the kernel's figure does too, so this is the difference since last time.
            let behind = used - self.cpu.get();
            if behind > 0.0 {
                self.cpu.inc_by(behind);
            }
        }
        let mut families: Vec<MetricFamily> = self
            .inner
            .collect()
            .into_iter()
            .filter(|family| family.name() != CPU_SECONDS)
            .collect();
        families.extend(self.cpu.collect());
        families
    }
}

/// User plus system CPU time of this process, in seconds, to the microsecond.
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given and nothing else.
    #[allow(unsafe_code)]
    let done = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if done != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it filled the struct.
    #[allow(unsafe_code)]
    let usage = unsafe { usage.assume_init() };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_reported_below_the_second() {
        // Burn a little CPU so the figure is above zero but well under a second.
        let mut sum = 0u64;
        for i in 0..2_000_000u64 {
            sum = sum.wrapping_add(i * i);
        }
        assert!(sum > 0);
        let metrics = ProcessMetrics::for_self();
        let families = metrics.collect();
        let cpu: Vec<&MetricFamily> = families
            .iter()
            .filter(|family| family.name() == CPU_SECONDS)
            .collect();
        assert_eq!(cpu.len(), 1, "exactly one family of that name");
        let value = cpu[0].get_metric()[0].get_counter().get_value();
        assert!(value > 0.0 && value.fract() != 0.0, "{value}");
        assert!(
            families
                .iter()
                .any(|family| family.name() == "process_resident_memory_bytes"),
            "the rest is kept"
        );
        assert_eq!(metrics.desc().len(), metrics.descs.len());
    }
}
