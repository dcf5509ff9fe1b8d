//! Dividing the process's cores among the videos processed at once.
//!
//! The single-video pipelines size their thread pools from the cores they may use
//! (`std::thread::available_parallelism`, FFmpeg's and x264's own counts), all of which read
//! the calling thread's CPU affinity on Linux. So each batch worker pins its thread to its
//! own disjoint set of cores before it starts a video: every decoder, chunk worker and
//! encoder the pipelines start from that thread inherits the set and sizes itself to it,
//! and the process never runs more busy threads than it has cores, with no thread counts
//! passed around.

/// How the cores are shared: `sets[w]` are the CPU ids of worker `w` (empty sets: no
/// pinning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorePlan {
    /// The cores this process may use.
    pub cores: usize,
    /// One CPU set per worker.
    pub sets: Vec<Vec<usize>>,
    /// Why the workers are not pinned, when they are not.
    pub note: Option<String>,
}

impl CorePlan {
    /// The plan for `workers` videos at once (0: automatic) on `cores` cores, given the CPU
    /// ids of the process's affinity mask (`None` where it cannot be read or set).
    pub(crate) fn new(workers: usize, cores: usize, allowed: Option<Vec<usize>>) -> Self {
        let cores = cores.max(1);
        let workers = match workers {
            0 => (cores / super::AUTO_CORES_PER_VIDEO).max(1),
            w => w,
        };
        let Some(allowed) = allowed else {
            return Self {
                cores,
                sets: vec![Vec::new(); workers],
                note: (workers > 1).then(|| {
                    "CPU affinity is not available on this system: the videos processed at \
                     once share all cores"
                        .to_string()
                }),
            };
        };
        if allowed.len() > cores && slurm_cpus().is_some() {
            // The scheduler gave this task fewer CPUs than its affinity mask holds, i.e. it
            // does not bind tasks to cores: other tasks may use the same ones, so pinning
            // here could stack several tasks on the first cores.
            return Self {
                cores,
                sets: vec![Vec::new(); workers],
                note: Some(format!(
                    "this Slurm task may use {cores} CPUs but is not bound to them (its \
                     affinity holds {}); set TaskPlugin=task/affinity or task/cgroup so tasks \
                     get their own cores",
                    allowed.len()
                )),
            };
        }
        if workers > cores {
            // More videos than cores: they share the cores (each pipeline then runs
            // single-threaded stretches on whichever core is free).
            return Self {
                cores,
                sets: vec![Vec::new(); workers],
                note: Some(format!(
                    "{workers} videos at once on {cores} cores: more videos than cores, so \
                     they share them"
                )),
            };
        }
        // The first `cores` CPUs of the mask (a CPU quota can be below the mask's size),
        // dealt out in contiguous runs, the larger runs first.
        let usable = &allowed[..cores.min(allowed.len())];
        let (base, extra) = (usable.len() / workers, usable.len() % workers);
        let mut sets = Vec::with_capacity(workers);
        let mut at = 0;
        for w in 0..workers {
            let n = base + usize::from(w < extra);
            sets.push(usable[at..at + n].to_vec());
            at += n;
        }
        Self {
            cores,
            sets,
            note: None,
        }
    }

    /// The plan for this process: its cores and affinity mask.
    pub(crate) fn for_process(workers: usize) -> Self {
        let mut cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(n) = slurm_cpus() {
            cores = cores.min(n);
        }
        Self::new(workers, cores, allowed_cpus())
    }

    /// Number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.sets.len()
    }
}

/// The CPUs Slurm gave this task (`SLURM_CPUS_PER_TASK`), when inside a Slurm job.
fn slurm_cpus() -> Option<usize> {
    std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
}

/// The CPU ids of this thread's affinity mask.
#[cfg(target_os = "linux")]
pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

/// The CPU ids of this thread's affinity mask (not available here).
#[cfg(not(target_os = "linux"))]
pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
    None
}

/// Pins the calling thread (and the threads it starts from now on) to `cpus`; nothing for
/// an empty set. Returns whether it was pinned.
#[cfg(target_os = "linux")]
pub(crate) fn pin_current_thread(cpus: &[usize]) -> bool {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    if cpus.is_empty() {
        return false;
    }
    let mut set = CpuSet::new();
    for &c in cpus {
        if set.set(c).is_err() {
            return false;
        }
    }
    match sched_setaffinity(Pid::from_raw(0), &set) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot pin a batch worker to CPUs {cpus:?}: {e}");
            false
        }
    }
}

/// Pins the calling thread (not available here).
#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_current_thread(_cpus: &[usize]) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_are_dealt_out_without_overlap() {
        let p = CorePlan::new(3, 8, Some((0..8).collect()));
        assert_eq!(p.sets, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        // A CPU quota below the mask: only that many cores are dealt.
        let p = CorePlan::new(2, 4, Some((0..16).collect()));
        assert_eq!(p.sets, [vec![0, 1], vec![2, 3]]);
        // Automatic: AUTO_CORES_PER_VIDEO each.
        let p = CorePlan::new(0, 8, Some((0..8).collect()));
        assert_eq!(
            p.workers(),
            8 / crate::pipelines::batch::AUTO_CORES_PER_VIDEO
        );
        assert!(p.sets.iter().all(|s| !s.is_empty()));
        // More workers than cores, or no affinity: shared, with a note.
        let p = CorePlan::new(4, 2, Some(vec![0, 1]));
        assert!(p.sets.iter().all(Vec::is_empty) && p.note.is_some());
        let p = CorePlan::new(2, 2, None);
        assert!(p.sets.iter().all(Vec::is_empty) && p.note.is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_sees_its_cores_only() {
        let Some(allowed) = allowed_cpus() else {
            return;
        };
        let first = allowed[0];
        std::thread::spawn(move || {
            assert!(pin_current_thread(&[first]));
            assert_eq!(allowed_cpus(), Some(vec![first]));
            assert_eq!(std::thread::available_parallelism().unwrap().get(), 1);
            // Threads started from here inherit the set.
            std::thread::spawn(move || assert_eq!(allowed_cpus(), Some(vec![first])))
                .join()
                .unwrap();
        })
        .join()
        .unwrap();
    }
}
