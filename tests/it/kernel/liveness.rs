//! Kernel liveness API (src/kernel/liveness.rs) on a fixed clock, without processes: a run is
//! settled exactly once whoever tries, each exit class lands where REF §8 says, the stale-claim
//! CAS guards, the respawn guard's four reasons, and supervisor settlements reported once.

use crate::helpers::TestBoard;
use hermes_kanban::kernel::{
    BlockRequest, Completion, ExitClass, SettledBy, Status, TERMINAL_PROVIDER_EXIT_CODE,
    WorkerExit, hostname,
};
use serde_json::Map;

fn claimed(tb: &TestBoard, title: &str) -> (String, i64) {
    let id = tb.task(title);
    let c = tb
        .board
        .claim_task_as(&id, Some(60), &format!("{}:1", hostname()))
        .unwrap();
    (id, c.run_id)
}

#[test]
fn a_run_is_settled_once_whoever_tries() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let (id, run) = claimed(&tb, "crashes");
    b.register_supervisor(&id, run, 4242, Some(7)).unwrap();
    b.record_worker_child(run, 4243, Some(8)).unwrap();
    let exit = WorkerExit::from_status(4243, Some(3), None);
    assert_eq!(exit.class, ExitClass::NonzeroExit);
    b.record_worker_exit(&id, run, &exit).unwrap();
    let p = b.run_process(run).unwrap().unwrap();
    assert_eq!(p.supervisor_pid, Some(4242));
    assert_eq!(p.worker_pid, Some(4243));
    assert_eq!(p.exit.as_ref(), Some(&exit));
    // The tick finds the supervisor dead and settles with the recorded status.
    let s = b
        .settle_worker_exit(&id, run, SettledBy::Tick, Some(2), None)
        .unwrap();
    assert_eq!(s.outcome.map(|o| o.as_str()), Some("crashed"));
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Ready);
    assert_eq!(t.consecutive_failures, 1);
    let r = b.get_run(run).unwrap();
    assert_eq!(r.error.as_deref(), Some("pid 4243 exited with code 3"));
    // A late supervisor (or a second tick) changes nothing.
    let again = b
        .settle_worker_exit(
            &id,
            run,
            SettledBy::Supervisor,
            Some(2),
            Some(&WorkerExit::unknown(Some(1))),
        )
        .unwrap();
    assert_eq!(again.outcome, None);
    assert_eq!(b.get_task(&id).unwrap().consecutive_failures, 1);
    // Settled by a tick: already reported in that tick's result.
    assert!(b.take_supervisor_settlements().unwrap().is_empty());
}

#[test]
fn an_exit_after_the_worker_completed_changes_nothing() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let (id, run) = claimed(&tb, "completes");
    b.register_supervisor(&id, run, 4242, None).unwrap();
    b.complete_task(Completion {
        task_id: id.clone(),
        summary: Some("done".into()),
        expected_run_id: Some(run),
        ..Default::default()
    })
    .unwrap();
    let s = b
        .settle_worker_exit(
            &id,
            run,
            SettledBy::Supervisor,
            None,
            Some(&WorkerExit::from_status(9, Some(0), None)),
        )
        .unwrap();
    assert_eq!(s.outcome, None, "not a protocol violation: it completed");
    assert_eq!(b.get_task(&id).unwrap().status, Status::Done);
    let p = b.run_process(run).unwrap().unwrap();
    assert_eq!(p.settled_outcome.as_deref(), Some("already_closed"));
    assert!(b.take_supervisor_settlements().unwrap().is_empty());
}

#[test]
fn protocol_violations_trip_at_the_streak_limit_and_rate_limits_do_not_break_it() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let id = tb.task("silent");
    let lock = format!("{}:1", hostname());
    let settle = |exit: WorkerExit| {
        let run = b.claim_task_as(&id, Some(60), &lock).unwrap().run_id;
        tb.advance(1);
        b.settle_worker_exit(&id, run, SettledBy::Supervisor, Some(2), Some(&exit))
            .unwrap()
    };
    let clean = || WorkerExit::from_status(9, Some(0), None);
    assert!(settle(clean()).protocol_violation);
    let rl = settle(WorkerExit::from_status(9, Some(75), None));
    assert_eq!(rl.outcome.map(|o| o.as_str()), Some("rate_limited"));
    assert!(
        !settle(clean()).tripped,
        "2 violations (the rate limit is skipped)"
    );
    assert_eq!(b.get_task(&id).unwrap().consecutive_failures, 0);
    let third = settle(clean());
    assert!(third.tripped && third.protocol_violation);
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Blocked);
    assert_eq!(t.consecutive_failures, 1);
    let reports = b.take_supervisor_settlements().unwrap();
    let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        vec![
            "protocol_violation",
            "rate_limited",
            "protocol_violation",
            "protocol_violation"
        ]
    );
    assert!(reports.last().unwrap().tripped);
    assert!(
        b.take_supervisor_settlements().unwrap().is_empty(),
        "reported once"
    );
    // Stays blocked (SPEC §3.3 fix 2).
    b.recompute_ready().unwrap();
    assert_eq!(b.get_task(&id).unwrap().status, Status::Blocked);
}

#[test]
fn time_outs_and_spawn_failures_count_against_the_breaker() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let (id, run) = claimed(&tb, "slow");
    let s = b
        .settle_worker_exit(
            &id,
            run,
            SettledBy::Tick,
            Some(2),
            Some(&WorkerExit::timed_out(Some(5), 7, 4, true)),
        )
        .unwrap();
    assert_eq!(s.outcome.map(|o| o.as_str()), Some("timed_out"));
    let r = b.get_run(run).unwrap();
    assert_eq!(r.error.as_deref(), Some("elapsed 7s > limit 4s"));
    assert_eq!(r.metadata.as_ref().unwrap()["sigkill"], true);
    let lock = format!("{}:1", hostname());
    let run2 = b.claim_task_as(&id, Some(60), &lock).unwrap().run_id;
    let s = b
        .settle_worker_exit(
            &id,
            run2,
            SettledBy::Tick,
            Some(2),
            Some(&WorkerExit::spawn_failed("`hermes` executable not found")),
        )
        .unwrap();
    assert!(s.tripped);
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Blocked);
    assert_eq!(t.consecutive_failures, 2);
    assert_eq!(b.get_run(run2).unwrap().outcome.as_deref(), Some("gave_up"));
}

#[test]
fn exit_78_is_a_terminal_provider_error_that_blocks_sticky_on_the_first_failure() {
    let tb = TestBoard::new();
    let b = &tb.board;
    // An ordinary non-zero exit counts one failure and goes back to ready (limit 2).
    let (other, run) = claimed(&tb, "ordinary crash");
    let s = b
        .settle_worker_exit(
            &other,
            run,
            SettledBy::Supervisor,
            Some(2),
            Some(&WorkerExit::from_status(9, Some(3), None)),
        )
        .unwrap();
    assert!(!s.tripped);
    assert_eq!(b.get_task(&other).unwrap().status, Status::Ready);
    // Exit 78 trips at once, below the limit, with a sticky gave_up.
    let (id, run) = claimed(&tb, "revoked credential");
    let s = b
        .settle_worker_exit(
            &id,
            run,
            SettledBy::Supervisor,
            Some(5),
            Some(&WorkerExit::from_status(
                9,
                Some(TERMINAL_PROVIDER_EXIT_CODE),
                None,
            )),
        )
        .unwrap();
    assert!(s.tripped, "{s:?}");
    assert_eq!(s.outcome.map(|o| o.as_str()), Some("crashed"));
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Blocked);
    assert_eq!(t.consecutive_failures, 1);
    assert!(t.claim_lock.is_none() && t.worker_pid.is_none() && t.current_run_id.is_none());
    assert!(
        t.last_failure_error
            .as_deref()
            .is_some_and(|e| e.contains("terminal provider error")),
        "{:?}",
        t.last_failure_error
    );
    let events = b.list_events(&id, None).unwrap();
    let crashed = events.iter().find(|e| e.kind == "crashed").unwrap();
    assert_eq!(crashed.payload.as_ref().unwrap()["terminal_provider"], true);
    let gave_up = events.iter().find(|e| e.kind == "gave_up").unwrap();
    let p = gave_up.payload.as_ref().unwrap();
    assert_eq!(p["sticky"], true, "{p}");
    assert_eq!(p["terminal_provider"], true, "{p}");
    assert_eq!(p["failures"], 1);
    // It stays blocked until an operator fixes the provider and unblocks.
    b.recompute_ready().unwrap();
    assert_eq!(b.get_task(&id).unwrap().status, Status::Blocked);
}

#[test]
fn stale_claims_are_extended_deferred_or_released_only_while_expired() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let (id, run) = claimed(&tb, "expires");
    let lock = b.get_task(&id).unwrap().claim_lock.unwrap();
    // Not expired yet: every CAS refuses.
    assert_eq!(b.extend_expired_claim(&id, &lock, 60, None).unwrap(), None);
    assert!(!b.release_stale_claim(&id, Some(&lock), Map::new()).unwrap());
    tb.advance(61);
    assert!(
        !b.release_stale_claim(&id, Some("other:1"), Map::new())
            .unwrap()
    );
    let exp = b.extend_expired_claim(&id, &lock, 60, Some(4)).unwrap();
    assert_eq!(exp, Some(tb.now() + 60));
    assert_eq!(b.get_run(run).unwrap().claim_expires, exp);
    tb.advance(61);
    assert!(b.defer_reclaim(&id, Some(&lock), 120, Map::new()).unwrap());
    assert_eq!(b.get_task(&id).unwrap().claim_expires, Some(tb.now() + 120));
    tb.advance(121);
    assert!(b.release_stale_claim(&id, Some(&lock), Map::new()).unwrap());
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Ready);
    assert_eq!(t.consecutive_failures, 0);
    let r = b.get_run(run).unwrap();
    assert_eq!(r.outcome.as_deref(), Some("reclaimed"));
    assert_eq!(r.error, Some(format!("stale_lock={lock}")));
    let kinds: Vec<String> = b
        .list_events(&id, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["claim_extended", "reclaim_deferred", "reclaimed"] {
        assert!(kinds.contains(&k.to_string()), "{k}: {kinds:?}");
    }
    // A supervisor arriving late cannot settle the released run.
    let s = b
        .settle_worker_exit(
            &id,
            run,
            SettledBy::Supervisor,
            None,
            Some(&WorkerExit::unknown(None)),
        )
        .unwrap();
    assert_eq!(s.outcome, None);

    let (id2, run2) = claimed(&tb, "quiet");
    let lock2 = b.get_task(&id2).unwrap().claim_lock;
    assert!(
        b.release_stale_run(&id2, run2, lock2.as_deref(), "no heartbeat", Map::new())
            .unwrap()
    );
    assert_eq!(b.get_run(run2).unwrap().outcome.as_deref(), Some("stale"));
    assert!(
        !b.release_stale_run(&id2, run2, lock2.as_deref(), "again", Map::new())
            .unwrap()
    );
}

#[test]
fn the_respawn_guard_has_four_reasons() {
    let tb = TestBoard::new();
    let b = &tb.board;
    // rate_limit_cooldown, then allowed after the cool-down.
    let (rl, run) = claimed(&tb, "quota");
    b.settle_worker_exit(
        &rl,
        run,
        SettledBy::Tick,
        None,
        Some(&WorkerExit::from_status(3, Some(75), None)),
    )
    .unwrap();
    assert_eq!(
        b.respawn_guard(&rl, 300).unwrap(),
        Some("rate_limit_cooldown")
    );
    assert_eq!(b.respawn_guard(&rl, 0).unwrap(), None);
    tb.advance(301);
    assert_eq!(b.respawn_guard(&rl, 300).unwrap(), None);
    // blocker_auth from the last failure text.
    let (auth, run) = claimed(&tb, "creds");
    b.settle_worker_exit(
        &auth,
        run,
        SettledBy::Tick,
        None,
        Some(&WorkerExit::spawn_failed(
            "401 Unauthorized: invalid API key",
        )),
    )
    .unwrap();
    assert_eq!(b.respawn_guard(&auth, 300).unwrap(), Some("blocker_auth"));
    // recent_success: a completion within the hour nobody re-opened.
    let done = tb.task("done recently");
    b.complete_task(Completion {
        task_id: done.clone(),
        summary: Some("ok".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.respawn_guard(&done, 300).unwrap(), Some("recent_success"));
    // active_pr: a GitHub PR link in a recent comment.
    let pr = tb.task("has a PR");
    b.add_comment(&pr, "bob", "opened https://github.com/acme/app/pull/12")
        .unwrap();
    assert_eq!(b.respawn_guard(&pr, 300).unwrap(), Some("active_pr"));
    tb.advance(86_401);
    assert_eq!(b.respawn_guard(&pr, 300).unwrap(), None);
    // The guard event is not repeated every tick.
    b.note_respawn_guarded(&pr, "active_pr").unwrap();
    b.note_respawn_guarded(&pr, "active_pr").unwrap();
    let n = b
        .list_events(&pr, None)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "respawn_guarded")
        .count();
    assert_eq!(n, 1);
    // A blocked (by the worker) task is untouched by settlements of its old run.
    let (blk, run) = claimed(&tb, "blocks");
    b.block_task(BlockRequest {
        task_id: blk.clone(),
        reason: Some("stuck".into()),
        expected_run_id: Some(run),
        ..Default::default()
    })
    .unwrap();
    let s = b
        .settle_worker_exit(
            &blk,
            run,
            SettledBy::Supervisor,
            None,
            Some(&WorkerExit::from_status(3, Some(0), None)),
        )
        .unwrap();
    assert_eq!(s.outcome, None);
    assert_eq!(b.get_task(&blk).unwrap().status, Status::Blocked);
}

#[test]
fn register_supervisor_refuses_a_run_that_is_no_longer_open() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let (id, run) = claimed(&tb, "reclaimed first");
    b.reclaim_task(&id, Some("operator"), Map::new()).unwrap();
    assert!(b.register_supervisor(&id, run, 4242, None).is_err());
    assert_eq!(b.get_task(&id).unwrap().worker_pid, None);
    let id2 = tb.task("unassigned");
    b.assign_task(&id2, None).unwrap();
    assert!(b.assign_default(&id2, "coder").unwrap());
    assert!(
        !b.assign_default(&id2, "other").unwrap(),
        "only when unassigned"
    );
    assert_eq!(b.get_task(&id2).unwrap().assignee.as_deref(), Some("coder"));
}
