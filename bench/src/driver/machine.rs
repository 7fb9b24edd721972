//! A one-line description of the machine, for the results note.

use procfs::Current;

/// CPU model, cores, memory and kernel, as far as /proc tells.
pub fn describe_machine() -> String {
    let cpu = procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_owned))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = procfs::Meminfo::current()
        .map(|info| info.mem_total as f64 / (1u64 << 30) as f64)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{cpu}, {cores} cores, {memory_gib:.0} GiB, Linux {kernel}")
}
