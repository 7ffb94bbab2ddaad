//! End-to-end tests with real agents as workers and MCP clients, their model pointed at the
//! scripted model server (`tests/agents/scripted_model.py`, loopback only): the real Hermes
//! Agent 0.19.0 (`target/hermes-venv`, installed by `scripts/interop --install-only`; `HK_HERMES`
//! overrides) spawned by our dispatcher (`dispatch` one-shot and `daemon`) for a parent → child
//! chain, a blocking worker and one that quits without a hand-off, and Hermes as an MCP client of
//! `hermes-kanban mcp` under the documented server name. Nothing is skipped: a missing Hermes
//! fails the test with the command that installs it.
//!
//! How Hermes 0.19.0 is pointed at the scripted server (read from its `hermes_cli/
//! runtime_provider.py`): the profile's `config.yaml` has `model: {provider: custom, base_url:
//! http://127.0.0.1:<port>/v1, default: <script>, api_key: …}`; the script is the model name.
//!
//! The first section holds the helpers (model server, Hermes homes, running our binary) shared
//! by every agent's tests; the tests follow, one section per agent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// Our binary.
const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// How long one real agent run may take. A Hermes start is ~15 s on a loaded 2-core machine
/// (Python imports and plugin discovery); generous so a busy CI box does not fail the test.
const AGENT_DEADLINE: Duration = Duration::from_secs(300);

/// The real `hermes` 0.19.0: `$HK_HERMES`, else `target/hermes-venv/bin/hermes`. Panics (never
/// skips) with the install command when it is missing.
pub fn hermes_bin() -> PathBuf {
    let p = std::env::var_os("HK_HERMES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hermes-venv/bin/hermes")
        });
    assert!(
        p.is_file(),
        "the real Hermes Agent is missing at {}: run `bash scripts/interop --install-only` (or set HK_HERMES)",
        p.display()
    );
    p
}

/// The scripted model server, killed on drop.
pub struct ModelServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ModelServer {
    /// Start `tests/agents/scripted_model.py --log <dir>/model-requests.jsonl` on a free port.
    pub fn start(dir: &Path) -> ModelServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/scripted_model.py");
        let log = dir.join("model-requests.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the scripted model server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("scripted model server said {first:?}"));
        ModelServer { child, port, log }
    }

    /// The OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The chat-completion request bodies received so far, in order.
    pub fn chat_requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/chat/completions"))
            })
            .map(|r| r["body"].clone())
            .collect()
    }

    /// Chat requests whose conversation mentions `needle` (e.g. a task id).
    pub fn requests_mentioning(&self, needle: &str) -> Vec<Value> {
        self.chat_requests()
            .into_iter()
            .filter(|b| b["messages"].to_string().contains(needle))
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names of the tools offered in one chat request.
pub fn offered_tools(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A throwaway `HOME` with a Hermes root (`<dir>/hermes`), our binary and the agent on hand.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub hermes: PathBuf,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            hermes: hermes_bin(),
        }
    }

    /// `HERMES_HOME` (the Hermes root).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("hermes")
    }

    /// The `model:` section pointing Hermes at the scripted server with `script` as its model.
    pub fn model_yaml(server: &ModelServer, script: &str) -> String {
        format!(
            "model:\n  provider: custom\n  base_url: {}\n  default: {script}\n  api_key: scripted-key\n",
            server.base_url()
        )
    }

    /// Create the Hermes profile `name` whose model is `script` on `server`, plus `extra` YAML.
    pub fn profile(&self, name: &str, server: &ModelServer, script: &str, extra: &str) -> PathBuf {
        let home = if name == "default" {
            self.root()
        } else {
            self.root().join("profiles").join(name)
        };
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("config.yaml"),
            format!("{}{extra}", Home::model_yaml(server, script)),
        )
        .unwrap();
        home
    }

    /// The environment every process of the test gets: the throwaway home, the real `hermes` as
    /// `HERMES_BIN`, and the switches that keep Hermes offline and quiet.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.dir.path().to_string_lossy().into()),
            ("HERMES_HOME".into(), self.root().to_string_lossy().into()),
            ("HERMES_BIN".into(), self.hermes.to_string_lossy().into()),
            ("HERMES_DISABLE_LAZY_INSTALLS".into(), "1".into()),
            ("TIRITH_ENABLED".into(), "false".into()),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// A command for our binary with [`Home::env`].
    pub fn hk_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HK);
        c.args(args)
            .env_clear()
            .envs(self.env())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Run our binary; panics unless it exits 0.
    pub fn hk(&self, args: &[&str]) -> Output {
        let out = self.hk_cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "hermes-kanban {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run our binary with `--json` output and parse it.
    pub fn hk_json(&self, args: &[&str]) -> Value {
        let out = self.hk(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `create … --json`, returning the id.
    pub fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title, "--json"];
        args.extend_from_slice(extra);
        self.hk_json(&args)["id"].as_str().unwrap().to_string()
    }

    /// `show --json` of a task.
    pub fn show(&self, id: &str) -> Value {
        self.hk_json(&["show", id, "--json"])
    }

    /// `runs --json` of a task.
    pub fn runs(&self, id: &str) -> Vec<Value> {
        self.hk_json(&["runs", id, "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Wait until the task's status is one of `want` (the worker log in the panic message).
    pub fn wait_status(&self, id: &str, want: &[&str]) -> Value {
        let deadline = Instant::now() + AGENT_DEADLINE;
        loop {
            let s = self.show(id);
            let status = s["task"]["status"].as_str().unwrap_or("").to_string();
            if want.contains(&status.as_str()) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{id} still {status} after {AGENT_DEADLINE:?}; worker log:\n{}",
                self.worker_log(id)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Wait until the task's latest run is closed; returns it.
    pub fn wait_run_closed(&self, id: &str) -> Value {
        let deadline = Instant::now() + AGENT_DEADLINE;
        loop {
            if let Some(r) = self.runs(id).last()
                && !r["ended_at"].is_null()
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{id}: no closed run after {AGENT_DEADLINE:?}; worker log:\n{}",
                self.worker_log(id)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The task's worker log.
    pub fn worker_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.root().join(format!("kanban/logs/{id}.log")))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Run the agent itself (`hermes …`) with [`Home::env`] and `HERMES_HOME=home`.
    pub fn run_hermes(&self, home: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(&self.hermes);
        c.args(args)
            .env_clear()
            .envs(self.env())
            .env("HERMES_HOME", home)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, AGENT_DEADLINE, &format!("hermes {args:?}"))
    }

    /// Start `daemon --interval <secs>` (stopped with SIGTERM by [`Daemon`]'s drop).
    pub fn daemon(&self, interval: &str) -> Daemon {
        let child = self
            .hk_cmd(&["daemon", "--interval", interval])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Daemon(child)
    }
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

/// A running `hermes-kanban daemon`; SIGTERM on drop.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait for a child with a deadline (killed and reported when it passes).
pub fn wait_output(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Assert a run ended `completed` with the scripted summary and metadata for `id`.
pub fn assert_scripted_completion(run: &Value, id: &str) {
    assert_eq!(run["outcome"], "completed", "{run}");
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!(
        run["summary"].as_str(),
        Some(format!("scripted summary for {id}").as_str()),
        "{run}"
    );
    assert_eq!(run["metadata"]["scripted"], true, "{run}");
    assert_eq!(run["metadata"]["task"], id, "{run}");
}

/// The tool results (role `tool` message contents) the model received in `requests`.
pub fn tool_results(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Hermes Agent 0.19.0 as the worker of our dispatcher
// ------------------------------------------------------------------------------------------------

/// The chain both dispatch modes run: parent and child done by real Hermes workers with the
/// model's summary and metadata on their runs, and the child's `kanban_show` (the tool result
/// the model got) carrying the parent's hand-off.
fn assert_chain_done(home: &Home, server: &ModelServer, parent: &str, child: &str) {
    for id in [parent, child] {
        let show = home.wait_status(id, &["done"]);
        assert_eq!(
            show["latest_summary"].as_str(),
            Some(format!("scripted summary for {id}").as_str()),
            "{show}"
        );
        let runs = home.runs(id);
        assert_eq!(runs.len(), 1, "one attempt each: {runs:?}");
        assert_scripted_completion(&runs[0], id);
        assert_eq!(runs[0]["profile"], "worker");
        let kinds: Vec<&str> = show["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        for k in ["claimed", "spawned", "heartbeat", "completed"] {
            assert!(kinds.contains(&k), "{id}: {k} missing from {kinds:?}");
        }
    }
    // The worker argv Hermes was started with: no kanban-worker skill (the profile has none).
    let log = home.worker_log(parent);
    assert!(
        log.contains(&format!(
            "-p worker --cli --accept-hooks chat -q work kanban task {parent}"
        )),
        "{log}"
    );
    let child_reqs = server.requests_mentioning(child);
    assert!(!child_reqs.is_empty(), "the child's worker asked the model");
    assert!(
        offered_tools(&child_reqs[0])
            .iter()
            .any(|t| t == "kanban_complete"),
        "Hermes' native kanban tools offered to the worker"
    );
    let handoff = format!("scripted summary for {parent}");
    let results = tool_results(&child_reqs);
    assert!(
        results.iter().any(|r| r.contains(&handoff)),
        "the child's kanban_show result carries the parent's hand-off {handoff:?}: {results:?}"
    );
}

#[test]
fn one_shot_dispatch_runs_a_parent_child_chain_with_the_real_hermes() {
    let home = Home::new();
    let server = ModelServer::start(home.dir.path());
    home.profile("worker", &server, "scripted-complete", "");
    home.hk(&["init"]);
    let parent = home.create("research the API", &["--assignee", "worker"]);
    let child = home.create(
        "write it up",
        &["--assignee", "worker", "--parent", &parent],
    );
    let r = home.hk_json(&["dispatch", "--json"]);
    assert_eq!(r["spawned"][0]["task_id"], parent.as_str(), "{r}");
    assert_eq!(r["spawned"].as_array().unwrap().len(), 1, "{r}");
    home.wait_status(&parent, &["done"]);
    let r = home.hk_json(&["dispatch", "--json"]);
    assert_eq!(r["spawned"][0]["task_id"], child.as_str(), "{r}");
    assert_chain_done(&home, &server, &parent, &child);
}

#[test]
fn the_daemon_runs_a_parent_child_chain_with_the_real_hermes() {
    let home = Home::new();
    let server = ModelServer::start(home.dir.path());
    home.profile("worker", &server, "scripted-complete", "");
    home.hk(&["init"]);
    let parent = home.create("collect the numbers", &["--assignee", "worker"]);
    let child = home.create(
        "chart the numbers",
        &["--assignee", "worker", "--parent", &parent],
    );
    let _daemon = home.daemon("1");
    assert_chain_done(&home, &server, &parent, &child);
}

/// A worker whose model blocks ends `blocked` with the model's reason; one whose model answers
/// without completing or blocking is a protocol violation (the run `crashed` with
/// `protocol_violation`, the task back to ready for a retry). Both run at once from one tick.
#[test]
fn real_hermes_workers_that_block_or_quit_are_settled_as_such() {
    let home = Home::new();
    let server = ModelServer::start(home.dir.path());
    home.profile("blocker", &server, "scripted-block", "");
    home.profile("quitter", &server, "scripted-quit", "");
    home.hk(&["init"]);
    let b = home.create("needs a decision", &["--assignee", "blocker"]);
    let q = home.create("forgets to finish", &["--assignee", "quitter"]);
    let r = home.hk_json(&["dispatch", "--json"]);
    assert_eq!(r["spawned"].as_array().unwrap().len(), 2, "{r}");

    let show = home.wait_status(&b, &["blocked"]);
    let runs = home.runs(&b);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "blocked");
    assert_eq!(runs[0]["summary"], "scripted: need a decision");
    let blocked = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["kind"] == "blocked")
        .cloned()
        .unwrap();
    assert_eq!(blocked["payload"]["reason"], "scripted: need a decision");

    let run = home.wait_run_closed(&q);
    assert_eq!(run["outcome"], "crashed", "{run}");
    assert_eq!(run["metadata"]["protocol_violation"], true, "{run}");
    let show = home.show(&q);
    assert_eq!(
        show["task"]["status"], "ready",
        "retried after one violation"
    );
    // The model was asked and answered text: the violation is the worker's, not a crash.
    assert!(!server.requests_mentioning(&q).is_empty());
    let log = home.worker_log(&q);
    assert!(log.contains("scripted"), "{log}");
}

// ------------------------------------------------------------------------------------------------
// Hermes Agent 0.19.0 as an MCP client of `hermes-kanban mcp`
// ------------------------------------------------------------------------------------------------

/// Hermes lists our tools to the model when the MCP server is named `hermes_kanban` (as
/// prefixed `mcp__hermes_kanban__kanban_*` tools); under the name `kanban` it registers them
/// and then never sends them, because the name collides with its built-in `kanban` toolset.
/// That is why the README documents `hermes_kanban`.
#[test]
fn hermes_as_an_mcp_client_sends_our_tools_under_hermes_kanban_but_not_kanban() {
    let home = Home::new();
    let server = ModelServer::start(home.dir.path());
    home.hk(&["init"]);
    let task = home.create("visible through MCP", &["--assignee", "worker"]);
    let mut runs = Vec::new();
    for name in ["hermes_kanban", "kanban"] {
        // One Hermes home per server name, each pointing its MCP client at our board.
        let h = home.dir.path().join(format!("client-{name}"));
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(
            h.join("config.yaml"),
            format!(
                "{}mcp_servers:\n  {name}:\n    command: {HK}\n    args: [\"mcp\"]\n    env:\n      HERMES_HOME: {}\n",
                Home::model_yaml(&server, "scripted-list-tools"),
                home.root().display()
            ),
        )
        .unwrap();
        let mut c = Command::new(&home.hermes);
        c.args([
            "--cli",
            "chat",
            "-q",
            &format!("list the tools ({name}) for {task}"),
        ])
        .env_clear()
        .envs(home.env())
        .env("HERMES_HOME", &h)
        .current_dir(home.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        runs.push((name, c.spawn().unwrap()));
    }
    for (name, child) in runs {
        let out = wait_output(child, AGENT_DEADLINE, &format!("hermes chat ({name})"));
        assert!(
            out.status.success(),
            "hermes chat ({name}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tools_for = |name: &str| -> Vec<String> {
        let reqs = server.requests_mentioning(&format!("list the tools ({name})"));
        assert!(!reqs.is_empty(), "{name}: the model was asked");
        offered_tools(&reqs[0])
    };
    let ours = tools_for("hermes_kanban");
    for t in [
        "kanban_show",
        "kanban_list",
        "kanban_create",
        "kanban_complete",
        "kanban_block",
        "kanban_heartbeat",
        "kanban_comment",
        "kanban_link",
    ] {
        let want = format!("mcp__hermes_kanban__{t}");
        assert!(ours.contains(&want), "{want} not offered: {ours:?}");
    }
    let colliding = tools_for("kanban");
    assert!(
        !colliding.iter().any(|t| t.contains("kanban")),
        "under the name `kanban` no kanban tool reaches the model: {colliding:?}"
    );
    assert!(!colliding.is_empty(), "Hermes' own tools are still offered");
}
