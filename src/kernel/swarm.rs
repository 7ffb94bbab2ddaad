//! Swarms (REF §19.3): one transaction creates a completed root card that serves as the
//! blackboard, parallel worker cards under it, a verifier waiting on every worker and a
//! synthesizer waiting on the verifier. The topology is posted on the root as a
//! `[swarm:blackboard]` comment; an idempotency key on the root returns the existing swarm.

use super::store::Tx;
use serde::Serialize;
use serde_json::{Value, json};

use super::board::{Board, add_event, load_task};
use super::comments::{add_comment_tx, list_comments_tx};
use super::error::{KernelError, Result};
use super::runs::synth_run;
use super::tasks::{NewTask, insert_task_tx};
use super::types::RunOutcome;
use super::validate as v;
use crate::{args, obj};

/// Prefix of blackboard comments on the root.
pub const BLACKBOARD_PREFIX: &str = "[swarm:blackboard] ";

/// One parallel worker of a swarm.
#[derive(Debug, Clone)]
pub struct SwarmWorker {
    /// Profile.
    pub assignee: String,
    /// Card title.
    pub title: String,
    /// Extra skills.
    pub skills: Vec<String>,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct SwarmSpec {
    pub goal: String,
    pub workers: Vec<SwarmWorker>,
    pub verifier: String,
    pub synthesizer: String,
    pub tenant: Option<String>,
    pub priority: i64,
    pub created_by: String,
    pub idempotency_key: Option<String>,
}

/// The ids of a swarm.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Swarm {
    pub root_id: String,
    pub worker_ids: Vec<String>,
    pub verifier_id: String,
    pub synthesizer_id: String,
    /// True when the idempotency key matched an existing swarm.
    #[serde(skip)]
    pub existing: bool,
}

fn topology_from_comments(c: &Tx, root: &str) -> Result<Option<Swarm>> {
    for cm in list_comments_tx(c, root)?.into_iter().rev() {
        let Some(rest) = cm.body.strip_prefix(BLACKBOARD_PREFIX) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(rest) else {
            continue;
        };
        if v.get("key").and_then(Value::as_str) != Some("topology") {
            continue;
        }
        let t = &v["value"];
        let ids = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        if let (Some(verifier_id), Some(synthesizer_id)) =
            (ids("verifier_id"), ids("synthesizer_id"))
        {
            let worker_ids = t
                .get("worker_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Some(Swarm {
                root_id: root.to_string(),
                worker_ids,
                verifier_id,
                synthesizer_id,
                existing: true,
            }));
        }
    }
    Ok(None)
}

/// Check a swarm's shape (a goal, 1–100 workers, a profile on every card). Returns the goal.
fn check_spec(spec: &SwarmSpec) -> Result<String> {
    let goal = v::required_text("goal", &spec.goal, v::BODY_MAX_BYTES)?;
    if spec.workers.is_empty() {
        return Err(KernelError::invalid(
            "workers",
            "a swarm needs at least one --worker PROFILE:TITLE",
        ));
    }
    if spec.workers.len() > 100 {
        return Err(KernelError::invalid(
            "workers",
            "at most 100 workers per swarm",
        ));
    }
    for (field, name) in [
        ("verifier", &spec.verifier),
        ("synthesizer", &spec.synthesizer),
    ]
    .into_iter()
    .chain(spec.workers.iter().map(|w| ("workers", &w.assignee)))
    {
        if name.trim().is_empty() || name.trim().eq_ignore_ascii_case("none") {
            return Err(KernelError::invalid(
                field,
                "every swarm card needs a profile to work on it",
            ));
        }
    }
    Ok(goal)
}

/// The root is the blackboard: completed at once, with a synthesized run carrying the
/// swarm's metadata.
fn complete_root(
    c: &Tx,
    root_id: &str,
    goal: &str,
    goal_title: &str,
    workers: usize,
    now: i64,
) -> Result<()> {
    let summary = format!("swarm root for: {goal_title}");
    let meta = obj! {"kind" => "kanban_swarm_v1", "goal" => goal, "worker_count" => workers};
    c.exec(
        "UPDATE tasks SET status='done', completed_at=?1, result=?2 WHERE id=?3",
        args![now, summary, root_id],
    )?;
    let t = load_task(c, root_id)?;
    let run_id = synth_run(
        c,
        &t,
        RunOutcome::Completed,
        Some(&summary),
        None,
        Some(&meta),
        now,
    )?;
    add_event(
        c,
        root_id,
        Some(run_id),
        "completed",
        obj! {"result_len" => 0, "summary" => summary},
        now,
    )?;
    Ok(())
}

impl Board {
    /// Build a swarm in one transaction (see module docs).
    pub fn create_swarm(&self, spec: &SwarmSpec) -> Result<Swarm> {
        let goal = check_spec(spec)?;
        let goal_title = v::first_line(&goal, 200);
        let root_new = NewTask {
            title: format!("Swarm: {goal_title}"),
            body: Some(format!(
                "{goal}\n\nThis card is the swarm's blackboard: workers post findings as comments \
                prefixed `{}` with a JSON object {{\"key\": …, \"value\": …}}.",
                BLACKBOARD_PREFIX.trim_end()
            )),
            assignee: Some(spec.created_by.clone()),
            created_by: Some(spec.created_by.clone()),
            tenant: spec.tenant.clone(),
            priority: spec.priority,
            idempotency_key: spec.idempotency_key.clone(),
            ..Default::default()
        };
        let root_p = self.prepare_task(root_new)?;
        let mut worker_ps = Vec::new();
        for w in &spec.workers {
            worker_ps.push(self.prepare_task(NewTask {
                title: w.title.clone(),
                body: Some(String::new()),
                assignee: Some(w.assignee.clone()),
                created_by: Some(spec.created_by.clone()),
                tenant: spec.tenant.clone(),
                priority: spec.priority,
                skills: w.skills.clone(),
                ..Default::default()
            })?);
        }
        let mut verifier_p = self.prepare_task(NewTask {
            title: format!("Verify: {goal_title}"),
            body: Some(format!(
                "Check the workers' findings for the swarm goal below against each \
                other and the sources; record what holds and what does not.\n\n{goal}"
            )),
            assignee: Some(spec.verifier.clone()),
            created_by: Some(spec.created_by.clone()),
            tenant: spec.tenant.clone(),
            priority: spec.priority,
            skills: vec!["requesting-code-review".into()],
            ..Default::default()
        })?;
        let mut synth_p = self.prepare_task(NewTask {
            title: format!("Synthesize: {goal_title}"),
            body: Some(format!(
                "Write the final answer to the swarm goal below from the verified \
                findings.\n\n{goal}"
            )),
            assignee: Some(spec.synthesizer.clone()),
            created_by: Some(spec.created_by.clone()),
            tenant: spec.tenant.clone(),
            priority: spec.priority,
            skills: vec!["humanizer".into()],
            ..Default::default()
        })?;
        let now = self.now();
        self.write(|c| {
            let root = insert_task_tx(c, &root_p, now)?;
            if root.existing {
                return topology_from_comments(c, &root.task.id)?.ok_or_else(|| {
                    KernelError::refused(
                        &root.task.id,
                        "reuse swarm",
                        "the idempotency key matches a task that is not a swarm root",
                    )
                });
            }
            let root_id = root.task.id.clone();
            complete_root(c, &root_id, &goal, &goal_title, spec.workers.len(), now)?;
            let mut worker_ids = Vec::new();
            for (mut p, w) in worker_ps.clone().into_iter().zip(&spec.workers) {
                p.parents = vec![root_id.clone()];
                p.body = Some(format!(
                    "{goal}\n\nYour part: {}\n\n## Swarm protocol\nYou are one of {} parallel \
                    workers. Card {root_id} is the shared blackboard: read its comments before you \
                    start, and post each finding there as a comment `{}{{\"key\": \"<short key>\", \
                    \"value\": <JSON>}}`. Finish your own card with kanban_complete; a verifier \
                    checks all workers' results next.",
                    w.title,
                    spec.workers.len(),
                    BLACKBOARD_PREFIX
                ));
                worker_ids.push(insert_task_tx(c, &p, now)?.task.id);
            }
            verifier_p.parents = worker_ids.clone();
            let verifier_id = insert_task_tx(c, &verifier_p, now)?.task.id;
            synth_p.parents = vec![verifier_id.clone()];
            let synthesizer_id = insert_task_tx(c, &synth_p, now)?.task.id;
            let topo = json!({"key": "topology", "value": {"goal": goal, "worker_ids": worker_ids,
                "verifier_id": verifier_id, "synthesizer_id": synthesizer_id}});
            add_comment_tx(
                c,
                &root_id,
                &spec.created_by,
                &format!("{BLACKBOARD_PREFIX}{topo}"),
                now,
            )?;
            Ok(Swarm {
                root_id,
                worker_ids,
                verifier_id,
                synthesizer_id,
                existing: false,
            })
        })
    }
}
