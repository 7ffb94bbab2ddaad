//! Live verbs: `tail <id>` follows one task's events, `watch` the whole board's. Both poll the
//! event log from a cursor and stop cleanly on Ctrl-C (SIGINT) or SIGTERM with exit 0.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use super::output::{dim, local_ts};
use super::{CliError, Ctx};
use crate::kernel::{Event, EventFilter, sorted_json};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &act);
        let _ = sigaction(Signal::SIGTERM, &act);
    }
}

fn sleep_interruptibly(secs: f64) {
    let mut left = Duration::from_secs_f64(secs.clamp(0.05, 60.0));
    while !left.is_zero() && !STOP.load(Ordering::SeqCst) {
        let step = left.min(Duration::from_millis(50));
        std::thread::sleep(step);
        left -= step;
    }
}

/// ` <payload>` as sorted JSON, or nothing when the event has no payload (null or `{}`),
/// as Hermes prints it.
fn payload(e: &Event) -> String {
    match &e.payload {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::Object(m)) if m.is_empty() => String::new(),
        Some(v) => format!(" {}", sorted_json(v)),
    }
}

fn flush() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `tail` arguments.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Task id.
    pub id: String,
    /// Poll interval in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

pub(crate) fn tail(ctx: &Ctx, a: &TailArgs) -> Result<(), CliError> {
    install_stop_handler();
    let b = ctx.open_read()?;
    b.get_task(&a.id)?;
    let filter = EventFilter {
        task_id: Some(a.id.clone()),
        ..Default::default()
    };
    let mut cursor = 0;
    while !STOP.load(Ordering::SeqCst) {
        for e in b.events_after(cursor, &filter)? {
            cursor = e.id;
            println!(
                "{} {}{}",
                dim(&format!("[{}]", local_ts(e.created_at))),
                e.kind,
                payload(&e)
            );
        }
        flush();
        sleep_interruptibly(a.interval);
    }
    Ok(())
}

/// `watch` arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only tasks of this assignee.
    #[arg(long)]
    pub assignee: Option<String>,
    /// Only tasks of this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only these event kinds (comma-separated), e.g. `completed,blocked,gave_up`; an
    /// unknown kind is an error listing the valid ones.
    #[arg(long, value_delimiter = ',', value_name = "KINDS", value_parser = kind_values(),
        hide_possible_values = true)]
    pub kinds: Vec<String>,
    /// Poll interval in seconds.
    #[arg(long, default_value_t = 0.5)]
    pub interval: f64,
}

/// `--kinds` completes the known kinds but accepts any string: a kind Hermes wrote to the
/// board's log is valid too, so the check is [`crate::kernel::Board::check_event_kinds`].
fn kind_values() -> super::output::Choices<String> {
    super::output::Choices {
        parse: super::output::any_string,
        values: crate::kernel::KNOWN_EVENT_KINDS,
    }
}

pub(crate) fn watch(ctx: &Ctx, a: &WatchArgs) -> Result<(), CliError> {
    install_stop_handler();
    let b = ctx.open_read()?;
    let mut cursor = b.max_event_id()?;
    let filter = EventFilter {
        kinds: a
            .kinds
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        ..Default::default()
    };
    b.check_event_kinds(&filter.kinds)?;
    let assignee = a.assignee.as_deref().map(|x| x.trim().to_lowercase());
    eprintln!("Watching board {} (Ctrl-C to stop)…", b.slug());
    while !STOP.load(Ordering::SeqCst) {
        // Assignee and tenant as they are now (like Hermes' JOIN at read time), looked up once
        // per task per poll.
        let mut owners: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
        for e in b.events_after(cursor, &filter)? {
            cursor = e.id;
            let (who, tenant) = owners
                .entry(e.task_id.clone())
                .or_insert_with(|| {
                    b.get_task(&e.task_id)
                        .map(|t| (t.assignee, t.tenant))
                        .unwrap_or((None, None))
                })
                .clone();
            if assignee.is_some() && who.as_deref().map(str::to_lowercase) != assignee {
                continue;
            }
            if a.tenant.is_some() && tenant != a.tenant {
                continue;
            }
            println!(
                "{} {:<10} {:<18} (@{}){}",
                dim(&format!("[{}]", local_ts(e.created_at))),
                e.task_id,
                e.kind,
                who.as_deref().unwrap_or("-"),
                payload(&e)
            );
        }
        flush();
        sleep_interruptibly(a.interval);
    }
    Ok(())
}
