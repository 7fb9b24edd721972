//! CPU time and resident memory of a process, read from /proc, so figures
//! can be given per CPU-second the server actually got.

use procfs::ProcError;
use procfs::process::Process;

/// Reads one process's counters; the process may be this one.
pub struct ProcessProbe {
    process: Process,
    ticks_per_second: f64,
    page_size: u64,
}

impl ProcessProbe {
    pub fn new(pid: i32) -> Result<Self, ProcError> {
        Self::wrap(Process::new(pid)?)
    }

    pub fn myself() -> Result<Self, ProcError> {
        Self::wrap(Process::myself()?)
    }

    fn wrap(process: Process) -> Result<Self, ProcError> {
        Ok(Self {
            process,
            ticks_per_second: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
        })
    }

    /// User plus system CPU time of all the process's threads so far.
    pub fn cpu_seconds(&self) -> Result<f64, ProcError> {
        let stat = self.process.stat()?;
        Ok((stat.utime + stat.stime) as f64 / self.ticks_per_second)
    }

    /// Resident set size now.
    pub fn rss_bytes(&self) -> Result<u64, ProcError> {
        // statm is one short line; status would do too but costs more to parse.
        Ok(self.process.statm()?.resident * self.page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let probe = ProcessProbe::myself().unwrap();
        let before = probe.cpu_seconds().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 60 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(probe.cpu_seconds().unwrap() > before);
    }

    #[test]
    fn own_rss_reflects_touched_memory() {
        let probe = ProcessProbe::myself().unwrap();
        let before = probe.rss_bytes().unwrap();
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = probe.rss_bytes().unwrap();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        drop(block);
    }
}
