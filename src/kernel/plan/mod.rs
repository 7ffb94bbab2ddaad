//! The spawn policy — which ready and review tasks a dispatcher tick spawns under the caps
//! (REF §9.1 steps 7–8, UP §10's review lane) — written once as [`SpawnPolicy`] and driven by
//! both the real tick and the dry run, so "a dry run shows what a tick would do" holds by
//! construction: the two differ only in the [`SpawnActions`] they plug in. Also the read-only
//! preview of a whole tick ([`Board::plan_dispatch`], SPEC §3.3 fix 3: writes nothing), the
//! cap-guarded claim a tick spawns through ([`Board::claim_under_caps`]: the caps are checked
//! under [`Tx::lock_board`] in the claim's own transaction, not only under the tick's flock) and
//! the cheap "did the board change" probe event-driven hosts poll ([`Board::change_marker`]).

mod ops;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::env::Env;
use super::error::{KernelError, Result};
use super::lifecycle::Claim;
use super::paths::hermes_root;
use super::tasks::profile_exists;
use super::types::Status;

pub use ops::DispatchPlan;

/// The spawn policy of a tick: caps, the default assignee, what is spawnable here, the review
/// lane and the respawn guard (REF §9.1). The tick and the dry run build it from the same
/// options (`TickOptions::spawn_policy`).
#[derive(Debug, Clone, Default)]
pub struct SpawnPolicy {
    /// Live concurrency cap: stop when running + spawned reaches it.
    pub max_spawn: Option<usize>,
    /// Do nothing when this many tasks are already running.
    pub max_in_progress: Option<usize>,
    /// Per-assignee cap on running tasks (ready lane).
    pub max_in_progress_per_profile: Option<usize>,
    /// Cap on the running tasks whose claim belongs to `host` (both lanes).
    pub max_in_progress_per_host: Option<usize>,
    /// The host this policy spawns for (the host part of its claim lock); `None`: no per-host
    /// count.
    pub host: Option<String>,
    /// Profile for unassigned ready tasks.
    pub default_assignee: Option<String>,
    /// Where profiles live (default: the shared Hermes root of the board's env).
    pub hermes_root: Option<PathBuf>,
    /// Apply the respawn guard (REF §8.9) with this rate-limit cool-down in seconds; `None`
    /// skips the guard.
    pub respawn_cooldown_seconds: Option<i64>,
    /// Assignees that are spawnable without a profile directory (they have their own
    /// `worker_command`).
    pub extra_spawnable: Vec<String>,
    /// `kanban.dispatch_profiles`: when set, only these assignees are claimed (UP §10).
    pub dispatch_profiles: Option<Vec<String>>,
    /// Leave `review` tasks alone (`kanban.review_dispatch: false`).
    pub no_review_lane: bool,
}

/// The options of [`Board::plan_dispatch`] (the same policy a tick runs).
pub type PlanOptions = SpawnPolicy;

/// Whether `kanban.dispatch_profiles` lets this home claim tasks of `assignee`: any when the
/// key is absent, else only the listed names (an empty list claims nothing).
pub fn dispatch_allowed(allow: Option<&[String]>, assignee: &str) -> bool {
    allow.is_none_or(|names| names.iter().any(|n| n == assignee))
}

/// Which queue a task is spawned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `ready` work.
    Ready,
    /// Upstream's review lane (UP §10): `review` tasks, claimed for their reviewer.
    Review,
}

impl Lane {
    pub(crate) fn status(self) -> Status {
        match self {
            Lane::Ready => Status::Ready,
            Lane::Review => Status::Review,
        }
    }
}

/// One unclaimed task waiting in a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub id: String,
    pub assignee: Option<String>,
}

/// What the policy decides over: the running counts and both queues in dispatch order
/// (priority descending, then oldest first, then insertion order), read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct SpawnQueue {
    /// Tasks running now.
    pub running: usize,
    /// Running tasks per assignee.
    pub per_profile: HashMap<String, usize>,
    /// Running tasks whose claim belongs to the policy's host.
    pub host_running: usize,
    pub ready: Vec<Queued>,
    pub review: Vec<Queued>,
}

/// One spawned (or, in a dry run, would-be spawned) task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpawnedTask {
    pub task_id: String,
    pub assignee: String,
    /// Resolved workspace ("" in a dry run).
    pub workspace: String,
}

/// A task held back by a per-profile cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CappedTask {
    pub task_id: String,
    pub assignee: String,
    /// Tasks of that assignee running at the time.
    pub current: usize,
}

/// A task held back by the respawn guard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardedTask {
    pub task_id: String,
    pub reason: String,
}

/// What the spawn policy did (or, in a dry run, would do) — the one result type of both; the
/// dispatcher's `DispatchResult` carries these lists under the same keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpawnOutcome {
    pub spawned: Vec<SpawnedTask>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    pub skipped_per_profile_capped: Vec<CappedTask>,
    pub auto_assigned_default: Vec<String>,
    pub respawn_guarded: Vec<GuardedTask>,
}

/// How one spawn attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// A worker was launched (`workspace`: the resolved workspace, "" in a dry run).
    Spawned { workspace: String },
    /// Not launched: a lost claim race or a spawn failure (already recorded by the actions).
    NotSpawned,
    /// The claim found the board at `max_in_progress` / `max_spawn` (another host spawned
    /// meanwhile): nothing more is spawned this tick.
    AtCap,
    /// The claim found the assignee at its per-profile cap, with this many running.
    ProfileAtCap(usize),
}

/// The side effects the policy asks for. The tick writes (assigns, notes events, claims and
/// launches); the dry run writes nothing and assumes every step succeeds.
pub trait SpawnActions {
    /// Give an unassigned task the default assignee. False: leave the task alone this tick.
    fn assign_default(&mut self, task_id: &str, assignee: &str) -> bool;
    /// The task's assignee cannot be spawned here.
    fn nonspawnable(&mut self, _task_id: &str, _assignee: &str) {}
    /// The respawn guard held the task back.
    fn guarded(&mut self, _task_id: &str, _reason: &str) {}
    /// Claim the task (from `lane`) for `assignee` and launch its worker.
    fn spawn(&mut self, task_id: &str, assignee: &str, lane: Lane) -> Attempt;
    /// The respawn guard's verdict on a task (REF §8.9,
    /// [`Board::respawn_guard`](crate::kernel::Board::respawn_guard)) — read through the
    /// actions, so the tick takes its board for that one read only.
    fn respawn_guard(&mut self, task_id: &str, cooldown: i64) -> Result<Option<&'static str>>;
    /// A kernel call of the policy itself failed for one task (the task is skipped).
    fn warn(&mut self, task_id: &str, what: &str, e: &KernelError);
}

/// The hard caps a spawn claim checks in its own transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpawnCaps {
    /// No claim while this many tasks run (the smaller of `max_in_progress` and `max_spawn`).
    pub max_running: Option<usize>,
    /// No ready-lane claim while the task's assignee runs this many.
    pub per_profile: Option<usize>,
    /// No claim while the claiming host (the host part of the claim lock) runs this many.
    pub per_host: Option<usize>,
}

/// The result of [`Board::claim_under_caps`].
#[derive(Debug, Clone)]
pub enum CapClaim {
    Claimed(Claim),
    /// The board runs `running` tasks, at its cap; nothing was written.
    AtCap {
        running: usize,
    },
    /// The task's assignee runs `running` tasks, at its per-profile cap; nothing was written.
    ProfileAtCap {
        running: usize,
    },
    /// The claiming host runs `running` tasks, at `max_in_progress_per_host`; nothing was
    /// written.
    HostAtCap {
        running: usize,
    },
}

impl SpawnPolicy {
    /// How many tasks may still be spawned with `running` running on the board and
    /// `host_running` on this host; `None` when `max_in_progress` or the per-host cap is
    /// reached (do nothing).
    pub fn budget(&self, running: usize, host_running: usize) -> Option<usize> {
        if let Some(cap) = self.max_in_progress
            && running >= cap
        {
            return None;
        }
        let mut budget = usize::MAX;
        if let Some(cap) = self.max_in_progress_per_host {
            budget = cap.checked_sub(host_running).filter(|b| *b > 0)?;
        }
        if let Some(cap) = self.max_in_progress {
            budget = budget.min(cap - running);
        }
        if let Some(ms) = self.max_spawn {
            budget = budget.min(ms.saturating_sub(running));
        }
        Some(budget)
    }

    /// The caps a spawn claim re-checks under the board lock.
    pub fn caps(&self) -> SpawnCaps {
        let max_running = match (self.max_in_progress, self.max_spawn) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        SpawnCaps {
            max_running,
            per_profile: self.max_in_progress_per_profile,
            per_host: self.max_in_progress_per_host,
        }
    }

    /// Where this policy looks for profiles: its `hermes_root`, else the board env's.
    pub fn root(&self, env: &Env) -> PathBuf {
        self.hermes_root.clone().unwrap_or_else(|| hermes_root(env))
    }

    /// Run the policy over `queue` (REF §9.1 steps 7–8): the ready lane by priority under the
    /// budget, one slot held back while review work waits under a finite budget, then the
    /// review lane (no default assignee, guard or per-profile cap). Every side effect goes
    /// through `act`, the respawn guard's reads too; profiles are looked up under `root`
    /// ([`SpawnPolicy::root`]).
    pub fn run(
        &self,
        root: PathBuf,
        queue: SpawnQueue,
        act: &mut dyn SpawnActions,
    ) -> SpawnOutcome {
        let budget = self.budget(queue.running, queue.host_running);
        let Some(budget) = budget.filter(|b| *b > 0) else {
            return SpawnOutcome::default();
        };
        let review = if self.no_review_lane {
            Vec::new()
        } else {
            queue.review
        };
        let ready_budget = if review.is_empty() || budget == usize::MAX {
            budget
        } else {
            budget - 1
        };
        let mut run = PolicyRun {
            policy: self,
            act,
            spawnable: Spawnable::new(self, root),
            per_profile: queue.per_profile,
            out: SpawnOutcome::default(),
        };
        for q in queue.ready {
            if run.out.spawned.len() >= ready_budget {
                break;
            }
            if run.ready(q) == Flow::Stop {
                return run.out;
            }
        }
        for q in review {
            if run.out.spawned.len() >= budget || run.review(q) == Flow::Stop {
                break;
            }
        }
        run.out
    }
}

/// Whether the policy goes on after one task.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Next,
    /// The board is at its cap: nothing more this tick.
    Stop,
}

/// One run of the policy: its running counts (kept up to date as it spawns) and its outcome.
struct PolicyRun<'p, 'a> {
    policy: &'p SpawnPolicy,
    act: &'a mut dyn SpawnActions,
    spawnable: Spawnable<'p>,
    per_profile: HashMap<String, usize>,
    out: SpawnOutcome,
}

impl PolicyRun<'_, '_> {
    /// One ready task: assignee (or the default one), spawnable, per-profile cap, respawn
    /// guard, then the spawn.
    fn ready(&mut self, q: Queued) -> Flow {
        let Some(assignee) = self.assignee_of(&q.id, q.assignee) else {
            return Flow::Next;
        };
        if !self.spawnable.check(&assignee) {
            self.act.nonspawnable(&q.id, &assignee);
            self.out.skipped_nonspawnable.push(q.id);
            return Flow::Next;
        }
        if let Some(cap) = self.policy.max_in_progress_per_profile {
            let n = self.per_profile.get(&assignee).copied().unwrap_or(0);
            if n >= cap {
                self.capped(q.id, assignee, n);
                return Flow::Next;
            }
        }
        if self.guarded(&q.id) {
            return Flow::Next;
        }
        match self.act.spawn(&q.id, &assignee, Lane::Ready) {
            Attempt::Spawned { workspace } => {
                *self.per_profile.entry(assignee.clone()).or_default() += 1;
                self.spawned(q.id, assignee, workspace);
            }
            Attempt::NotSpawned => {}
            Attempt::AtCap => return Flow::Stop,
            Attempt::ProfileAtCap(n) => {
                self.per_profile.insert(assignee.clone(), n);
                self.capped(q.id, assignee, n);
            }
        }
        Flow::Next
    }

    /// One review task: its own assignee (the reviewer), spawnable, then the spawn.
    fn review(&mut self, q: Queued) -> Flow {
        let a = match q.assignee {
            Some(a) if self.spawnable.check(&a) => a,
            Some(a) => {
                self.act.nonspawnable(&q.id, &a);
                self.out.skipped_nonspawnable.push(q.id);
                return Flow::Next;
            }
            None => {
                self.out.skipped_unassigned.push(q.id);
                return Flow::Next;
            }
        };
        match self.act.spawn(&q.id, &a, Lane::Review) {
            Attempt::Spawned { workspace } => self.spawned(q.id, a, workspace),
            Attempt::NotSpawned | Attempt::ProfileAtCap(_) => {}
            Attempt::AtCap => return Flow::Stop,
        }
        Flow::Next
    }

    /// The assignee a ready task is spawned as: its own, else the default one (assigned
    /// through `act`), else none (recorded as unassigned).
    fn assignee_of(&mut self, id: &str, assignee: Option<String>) -> Option<String> {
        if assignee.is_some() {
            return assignee;
        }
        match self.policy.default_assignee.as_deref() {
            Some(d) if self.spawnable.check(d) => {
                if !self.act.assign_default(id, d) {
                    return None;
                }
                self.out.auto_assigned_default.push(id.to_string());
                Some(d.to_string())
            }
            _ => {
                self.out.skipped_unassigned.push(id.to_string());
                None
            }
        }
    }

    /// Whether the respawn guard (REF §8.9) holds the task back (recorded when it does).
    fn guarded(&mut self, id: &str) -> bool {
        let Some(cooldown) = self.policy.respawn_cooldown_seconds else {
            return false;
        };
        match self.act.respawn_guard(id, cooldown) {
            Ok(None) => false,
            Ok(Some(reason)) => {
                self.act.guarded(id, reason);
                self.out.respawn_guarded.push(GuardedTask {
                    task_id: id.to_string(),
                    reason: reason.to_string(),
                });
                true
            }
            Err(e) => {
                self.act.warn(id, "checking the respawn guard of", &e);
                true
            }
        }
    }

    fn capped(&mut self, task_id: String, assignee: String, current: usize) {
        self.out.skipped_per_profile_capped.push(CappedTask {
            task_id,
            assignee,
            current,
        });
    }

    fn spawned(&mut self, task_id: String, assignee: String, workspace: String) {
        self.out.spawned.push(SpawnedTask {
            task_id,
            assignee,
            workspace,
        });
    }
}

/// Whether an assignee can be spawned on this machine (allowed by `dispatch_profiles`, and a
/// worker command or a profile on disk), memoised for one run of the policy.
struct Spawnable<'p> {
    policy: &'p SpawnPolicy,
    root: PathBuf,
    known: HashMap<String, bool>,
}

impl<'p> Spawnable<'p> {
    fn new(policy: &'p SpawnPolicy, root: PathBuf) -> Self {
        Spawnable {
            policy,
            root,
            known: HashMap::new(),
        }
    }

    fn check(&mut self, a: &str) -> bool {
        if let Some(v) = self.known.get(a) {
            return *v;
        }
        let p = self.policy;
        let v = dispatch_allowed(p.dispatch_profiles.as_deref(), a)
            && (p.extra_spawnable.iter().any(|x| x == a) || profile_exists(&self.root, a));
        self.known.insert(a.to_string(), v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_caps_follow_the_smaller_cap() {
        let p = SpawnPolicy {
            max_spawn: Some(3),
            max_in_progress: Some(5),
            ..Default::default()
        };
        assert_eq!(p.budget(0, 0), Some(3));
        assert_eq!(p.budget(2, 0), Some(1));
        assert_eq!(p.budget(3, 0), Some(0));
        assert_eq!(p.budget(5, 0), None);
        assert_eq!(p.caps().max_running, Some(3));
        assert_eq!(SpawnPolicy::default().budget(100, 100), Some(usize::MAX));
        let h = SpawnPolicy {
            max_in_progress: Some(5),
            max_in_progress_per_host: Some(2),
            ..Default::default()
        };
        assert_eq!(h.budget(1, 0), Some(2), "the host cap is the smaller");
        assert_eq!(h.budget(4, 1), Some(1), "the board cap is the smaller");
        assert_eq!(h.budget(2, 2), None, "this host is full");
        assert_eq!(h.caps().per_host, Some(2));
        assert_eq!(SpawnPolicy::default().caps(), SpawnCaps::default());
    }

    #[test]
    fn dispatch_profiles_allow_listed_names_only() {
        assert!(dispatch_allowed(None, "any"));
        let names = vec!["a".to_string()];
        assert!(dispatch_allowed(Some(&names), "a"));
        assert!(!dispatch_allowed(Some(&names), "b"));
        assert!(!dispatch_allowed(Some(&[]), "a"));
    }
}
