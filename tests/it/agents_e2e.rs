//! End-to-end tests with real agents as workers (issue 10): our dispatcher spawns a real agent
//! CLI for each ready task, the agent's model is the scripted OpenAI-compatible server in
//! `tests/agents/scripted_model.py` (Python stdlib, 127.0.0.1 only), and the agent reaches the
//! board through its own kanban tools or our MCP server. Everything is asserted through our CLI
//! (`show --json`, `runs --json`, `log`) and the model server's request log, as a user would
//! see it. Nothing is skipped: a missing agent fails its test with the command that installs it.
//!
//! Shared helpers come first (model server, throwaway homes, long-running processes); each
//! agent has its own `mod`:
//! - `hermes`: the real Hermes Agent 0.19.0 (`HK_HERMES`, else `target/hermes-venv`, installed
//!   by `scripts/interop --install-only`) spawned by our dispatcher (`dispatch` one-shot and
//!   `daemon`) with its native kanban tools, and as an MCP client of `hermes-kanban mcp`.
//!   Hermes 0.19.0 is pointed at the scripted server by its profile's `config.yaml` (read from
//!   its `hermes_cli/runtime_provider.py`): `model: {provider: custom, base_url:
//!   http://127.0.0.1:<port>/v1, default: <script>, api_key: …}`; the script is the model name.
//! - `codex`: Codex CLI (`@openai/codex`, from `HK_CODEX`, installed by `scripts/codex-install`)
//!   as a `kanban.worker_command` worker, once through `hermes-kanban mcp` over stdio and once
//!   through `serve`'s `/mcp` with the per-run bearer token.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// How long a scenario may take on a loaded 2-core machine before the test gives up.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------------------
// The scripted model server
// ---------------------------------------------------------------------------------------------

/// `tests/agents/scripted_model.py` on a free loopback port, killed on drop.
pub struct ModelServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ModelServer {
    /// Starts the server, logging every request to `<dir>/model-requests.jsonl`.
    pub fn start(dir: &Path) -> ModelServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/scripted_model.py");
        let log = dir.join("model-requests.jsonl");
        let python = std::env::var("HK_MODEL_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("read the model server's PORT line");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("model server printed {first:?}, expected `PORT <n>`"));
        ModelServer { child, port, log }
    }

    /// `http://127.0.0.1:<port>/v1`, the base URL OpenAI clients want.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Every request so far (`{"method", "path", "body"}`).
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("model log line is JSON"))
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Throwaway homes and our CLI
// ---------------------------------------------------------------------------------------------

/// A temp `HOME` with `HERMES_HOME=<tmp>/hermes` and `CODEX_HOME=<tmp>/codex`; our CLI and every
/// agent run with nothing from the developer's shell but `PATH`.
pub struct Home {
    pub dir: TempDir,
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

impl Drop for Home {
    /// Every scenario ends with the invariant check on every board of the home.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            crate::helpers::check_home(&crate::helpers::board::home_env(self.path()));
        }
    }
}

impl Home {
    pub fn new() -> Home {
        // Not under /tmp when possible: Codex refuses to create its helper links there (a
        // harmless warning, but noise in every worker log).
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tempfile::Builder::new()
            .prefix("agents-e2e-")
            .tempdir_in(base)
            .expect("tempdir");
        let home = Home { dir };
        for d in [home.hermes_home(), home.codex_home()] {
            std::fs::create_dir_all(d).unwrap();
        }
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn hermes_home(&self) -> PathBuf {
        self.path().join("hermes")
    }

    pub fn codex_home(&self) -> PathBuf {
        self.path().join("codex")
    }

    /// Applies the home's environment to a command.
    pub fn env(&self, c: &mut Command) {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("HERMES_HOME", self.hermes_home())
            .env("CODEX_HOME", self.codex_home())
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .env("LANG", "C.UTF-8")
            .env("HERMES_DISABLE_LAZY_INSTALLS", "1")
            .env("TIRITH_ENABLED", "false")
            .stdin(Stdio::null());
    }

    /// Runs our CLI; panics with its output unless it exits 0.
    pub fn hk(&self, args: &[&str]) -> String {
        let mut c = Command::new(HK);
        self.env(&mut c);
        let out = c.args(args).output().expect("run hermes-kanban");
        assert!(
            out.status.success(),
            "$ hermes-kanban {}\n[{}]\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn hk_json(&self, args: &[&str]) -> Value {
        let out = self.hk(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("hermes-kanban {} --json: {e}\n{out}", args.join(" ")))
    }

    /// `create TITLE --json` plus `extra`; returns the new task's id.
    pub fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title, "--json"];
        args.extend_from_slice(extra);
        let v = self.hk_json(&args);
        v["id"].as_str().expect("create --json has id").to_string()
    }

    pub fn show(&self, id: &str) -> Value {
        self.hk_json(&["show", id, "--json"])
    }

    pub fn runs(&self, id: &str) -> Vec<Value> {
        let v = self.hk_json(&["runs", id, "--json"]);
        v.as_array().cloned().unwrap_or_default()
    }

    pub fn status(&self, id: &str) -> String {
        self.show(id)["task"]["status"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }

    /// The worker log of a task (`hermes-kanban log ID`).
    pub fn log(&self, id: &str) -> String {
        self.hk(&["log", id])
    }

    /// Waits until every task has one of its wanted statuses; on timeout panics with each
    /// task's status, runs and worker log.
    pub fn wait_statuses(&self, want: &[(&str, &[&str])], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let pending: Vec<(String, String)> = want
                .iter()
                .map(|(id, ok)| (id.to_string(), self.status(id), *ok))
                .filter(|(_, s, ok)| !ok.contains(&s.as_str()))
                .map(|(id, s, _)| (id, s))
                .collect();
            if pending.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let mut msg = format!("timed out after {timeout:?}; still waiting for:\n");
                for (id, s) in &pending {
                    msg.push_str(&format!(
                        "== {id} is {s}\n-- runs --\n{}\n-- log --\n{}\n",
                        serde_json::to_string_pretty(&self.runs(id)).unwrap(),
                        self.log(id)
                    ));
                }
                panic!("{msg}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Writes `$HERMES_HOME/config.yaml`.
    pub fn write_hermes_config(&self, yaml: &str) {
        std::fs::write(self.hermes_home().join("config.yaml"), yaml).unwrap();
    }
}

/// A long-running process of ours (`daemon`, `serve`), its output in a file, killed on drop.
pub struct Running {
    child: Child,
    pub output: PathBuf,
}

impl Running {
    pub fn start(home: &Home, name: &str, args: &[&str]) -> Running {
        let output = home.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&output).unwrap();
        let mut c = Command::new(HK);
        home.env(&mut c);
        let child = c
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn hermes-kanban");
        Running { child, output }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The port `serve` printed ("serving on http://127.0.0.1:<port>").
    pub fn served_port(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if let Some(rest) = text.split("serving on http://127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(p) = digits.parse() {
                    return p;
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("serve exited ({st}) before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "serve did not listen:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run a task ended with (its last run).
fn last_run(runs: &[Value]) -> &Value {
    runs.last().expect("the task has a run")
}

/// Asserts a task ended `done` with the scripted model's hand-off on its run.
fn assert_done_with_scripted_handoff(home: &Home, id: &str) {
    let show = home.show(id);
    assert_eq!(show["task"]["status"], "done", "{id}: {show:#}");
    let want = format!("scripted summary for {id}");
    assert_eq!(show["latest_summary"], want.as_str(), "{id}: {show:#}");
    let runs = home.runs(id);
    let run = last_run(&runs);
    assert_eq!(run["outcome"], "completed", "{id}: {runs:#?}");
    assert_eq!(run["summary"], want.as_str(), "{id}: {runs:#?}");
    assert_eq!(
        run["metadata"],
        serde_json::json!({"scripted": true, "task": id}),
        "{id}: {runs:#?}"
    );
    let kinds: Vec<&str> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.iter().any(|k| k.contains("heartbeat")),
        "{id}: the scripted heartbeat left no event: {kinds:?}"
    );
}

/// Asserts a task ended `blocked` with the scripted reason on its run.
fn assert_blocked_by_worker(home: &Home, id: &str) {
    let show = home.show(id);
    assert_eq!(show["task"]["status"], "blocked", "{id}: {show:#}");
    let runs = home.runs(id);
    let run = last_run(&runs);
    assert_eq!(run["outcome"], "blocked", "{id}: {runs:#?}");
    assert_eq!(
        run["summary"], "scripted: need a decision",
        "{id}: {runs:#?}"
    );
}

/// Asserts the worker exited without `complete`/`block`: a protocol violation, and (with
/// `--max-retries 1`) the breaker blocked the task.
fn assert_protocol_violation(home: &Home, id: &str) {
    let show = home.show(id);
    assert_eq!(show["task"]["status"], "blocked", "{id}: {show:#}");
    let runs = home.runs(id);
    let first = &runs[0];
    assert_eq!(first["outcome"], "crashed", "{id}: {runs:#?}");
    assert_eq!(
        first["metadata"]["protocol_violation"], true,
        "{id}: {runs:#?}"
    );
    assert!(
        show["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "protocol_violation"),
        "{id}: no protocol_violation event: {show:#}"
    );
}

/// The text of every model request that mentions `needle` (JSON-encoded bodies).
fn requests_mentioning(model: &ModelServer, needle: &str) -> Vec<String> {
    model
        .requests()
        .iter()
        .map(|r| r["body"].to_string())
        .filter(|b| b.contains(needle))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Codex CLI
// ---------------------------------------------------------------------------------------------

mod codex {
    use super::*;

    /// The Codex CLI launcher: `HK_CODEX`, else what `scripts/codex-install` put in target/.
    fn codex_bin() -> PathBuf {
        if let Some(p) = std::env::var_os("HK_CODEX") {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "HK_CODEX={} does not exist: run `bash scripts/codex-install` (it installs \
                 @openai/codex into target/codex-cli and prints the path)",
                p.display()
            );
            return p;
        }
        let default =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/codex-cli/node_modules/.bin/codex");
        assert!(
            default.exists(),
            "Codex CLI not found: set HK_CODEX or run `bash scripts/codex-install` (installs \
             @openai/codex into target/codex-cli; scripts/test does this)"
        );
        default
    }

    /// The variables a stdio `hermes-kanban mcp` must receive inside a worker; Codex passes
    /// stdio MCP servers only a whitelist of its own environment plus `env_vars`.
    const PASS_THROUGH: &[&str] = &[
        "HERMES_HOME",
        "HERMES_PROFILE",
        "HERMES_KANBAN_TASK",
        "HERMES_KANBAN_RUN_ID",
        "HERMES_KANBAN_CLAIM_LOCK",
        "HERMES_KANBAN_TOKEN",
        "HERMES_KANBAN_DB",
        "HERMES_KANBAN_BOARD",
        "HERMES_KANBAN_WORKSPACE",
        "HERMES_KANBAN_WORKSPACES_ROOT",
    ];

    enum Mcp {
        /// `hermes-kanban mcp`, the identity passed through with `env_vars`.
        Stdio,
        /// `hermes-kanban mcp` with no `env_vars`: the worker command gives the identity as
        /// flags (see `write_worker_commands`).
        StdioFlags,
        Http {
            port: u16,
        },
    }

    /// `$CODEX_HOME/config.toml`: the scripted model as a Responses-API provider, no approval
    /// prompts, and our MCP server as `hermes_kanban`.
    fn write_codex_config(home: &Home, model: &ModelServer, mcp: Mcp) {
        let mut toml = format!(
            r#"model = "scripted-complete"
model_provider = "scripted"
approval_policy = "never"

[model_providers.scripted]
name = "scripted model (tests/agents/scripted_model.py)"
base_url = "{}"
wire_api = "responses"

[mcp_servers.hermes_kanban]
"#,
            model.base_url()
        );
        match mcp {
            Mcp::Stdio => {
                let vars: Vec<String> = PASS_THROUGH.iter().map(|v| format!("\"{v}\"")).collect();
                toml.push_str(&format!(
                    "command = \"{HK}\"\nargs = [\"mcp\"]\nenv_vars = [{}]\n",
                    vars.join(", ")
                ));
            }
            Mcp::StdioFlags => {
                toml.push_str(&format!("command = \"{HK}\"\nargs = [\"mcp\"]\n"));
            }
            Mcp::Http { port } => toml.push_str(&format!(
                "url = \"http://127.0.0.1:{port}/mcp\"\nbearer_token_env_var = \
                 \"HERMES_KANBAN_TOKEN\"\n"
            )),
        }
        std::fs::write(home.codex_home().join("config.toml"), toml).unwrap();
    }

    /// `kanban.worker_command`: one assignee per script, each running `codex exec` with that
    /// script as its model. With `identity_flags`, the command also overrides the MCP server's
    /// args with the run's identity as flags (`-c mcp_servers.hermes_kanban.args=[…]`, the
    /// placeholders filled in by the dispatcher) and the board's DB path, so nothing has to
    /// pass through Codex's environment filter.
    fn write_worker_commands(home: &Home, identity_flags: bool) {
        let codex = codex_bin();
        let mut yaml = String::from("kanban:\n  worker_command:\n");
        for script in ["complete", "block", "quit"] {
            let mut argv: Vec<String> = vec![
                codex.display().to_string(),
                "exec".into(),
                "--skip-git-repo-check".into(),
                "--ephemeral".into(),
                "--sandbox".into(),
                "workspace-write".into(),
                "-m".into(),
                format!("scripted-{script}"),
            ];
            if identity_flags {
                let db = home.hermes_home().join("kanban.db");
                argv.push("-c".into());
                argv.push(format!(
                    "mcp_servers.hermes_kanban.args=[\"mcp\", \"--task\", \"{{task_id}}\", \
                     \"--run-id\", \"{{run_id}}\", \"--db\", \"{}\"]",
                    db.display()
                ));
            }
            argv.extend(["-C".into(), "{workspace}".into(), "{prompt}".into()]);
            let argv = serde_json::to_string(&argv).unwrap();
            yaml.push_str(&format!("    codex-{script}: {argv}\n"));
        }
        home.write_hermes_config(&yaml);
    }

    /// Waits until the supervisor of each task's last run saw its worker exit ("run N settled"
    /// or "run N was already closed by the worker" in the task's log): a task is `done` as soon
    /// as `kanban_complete` commits, while Codex still sends its final model request — tearing
    /// the model server down before that would leave Codex retrying it forever.
    fn wait_workers_gone(home: &Home, ids: &[String]) {
        let deadline = Instant::now() + SCENARIO_TIMEOUT;
        for id in ids {
            let rid = last_run(&home.runs(id))["id"].as_i64().expect("run id");
            let settled = format!("run {rid} settled");
            let closed = format!("run {rid} was already closed by the worker");
            loop {
                let log = home.log(id);
                if log.contains(&settled) || log.contains(&closed) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id}: the worker of run {rid} did not exit:\n{log}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// MCP error lines in a Codex worker log.
    fn mcp_errors(log: &str) -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("ERROR") && (l.contains("mcp") || l.contains("MCP")))
            .map(str::to_string)
            .collect()
    }

    /// Parent → child chain, a blocking worker and a quitting worker, all on one board, with
    /// whatever dispatcher the caller runs. Returns the task ids (parent, child, blocker,
    /// quitter) after checking every outcome.
    fn scenario(home: &Home, model: &ModelServer) -> [String; 4] {
        // --max-runtime: if the test fails half-way and the model server goes, Codex would retry
        // it forever ("Reconnecting... waiting for network"); the supervisor stops it instead.
        let cap = ["--max-runtime", "5m"];
        let parent = home.create(
            "codex parent",
            &[&["--assignee", "codex-complete"], &cap[..]].concat(),
        );
        let child = home.create(
            "codex child",
            &[
                &["--assignee", "codex-complete", "--parent", &parent],
                &cap[..],
            ]
            .concat(),
        );
        let blocker = home.create(
            "codex blocker",
            &[&["--assignee", "codex-block"], &cap[..]].concat(),
        );
        let quitter = home.create(
            "codex quitter",
            &[
                &["--assignee", "codex-quit", "--max-retries", "1"],
                &cap[..],
            ]
            .concat(),
        );
        home.wait_statuses(
            &[
                (&parent, &["done", "blocked"]),
                (&child, &["done", "blocked"]),
                (&blocker, &["done", "blocked"]),
                (&quitter, &["done", "blocked"]),
            ],
            SCENARIO_TIMEOUT,
        );
        assert_done_with_scripted_handoff(home, &parent);
        assert_done_with_scripted_handoff(home, &child);
        assert_blocked_by_worker(home, &blocker);
        assert_protocol_violation(home, &quitter);
        let ids = [parent, child, blocker, quitter];
        wait_workers_gone(home, &ids);
        let [parent, child, _, _] = &ids;

        // Codex offered our tools to the model under the `hermes_kanban` MCP namespace.
        let offered = requests_mentioning(model, child);
        assert!(!offered.is_empty(), "no model request mentions {child}");
        assert!(
            offered[0].contains("mcp__hermes_kanban") && offered[0].contains("kanban_complete"),
            "Codex did not offer hermes_kanban's kanban_complete: {}",
            &offered[0][..offered[0].len().min(4000)]
        );
        // Worker scope: the server got the run's identity, so it offers the worker tools only.
        let first: Value = model
            .requests()
            .into_iter()
            .find(|r| r["body"].to_string().contains(child.as_str()))
            .expect("a request for the child");
        let namespace = first["body"]["tools"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "mcp__hermes_kanban"))
            .unwrap_or_else(|| panic!("no mcp__hermes_kanban namespace offered: {first}"));
        let names: Vec<&str> = namespace["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        for want in [
            "kanban_show",
            "kanban_heartbeat",
            "kanban_complete",
            "kanban_block",
        ] {
            assert!(names.contains(&want), "{want} not offered: {names:?}");
        }
        assert!(
            !names.contains(&"kanban_list"),
            "orchestrator tools offered to a worker (identity not passed to the MCP server?): \
             {names:?}"
        );
        // The child's kanban_show came back with the parent's hand-off in its worker context.
        let parent_summary = format!("scripted summary for {parent}");
        assert!(
            offered
                .iter()
                .any(|b| b.contains("function_call_output") && b.contains(&parent_summary)),
            "the child's kanban_show result never carried the parent's summary {parent_summary:?}"
        );
        ids
    }

    #[test]
    fn codex_worker_over_stdio_mcp_completes_blocks_and_quits() {
        let home = Home::new();
        let model = ModelServer::start(home.path());
        write_codex_config(&home, &model, Mcp::Stdio);
        write_worker_commands(&home, false);
        let _daemon = Running::start(&home, "daemon", &["daemon", "--interval", "1"]);
        let ids = scenario(&home, &model);
        assert_clean_stdio_logs(&home, &ids);
    }

    /// The identity as `mcp --task/--run-id/--db` flags in the worker command instead of
    /// `env_vars` (docs/agents.md).
    #[test]
    fn codex_worker_over_stdio_mcp_with_identity_flags() {
        let home = Home::new();
        let model = ModelServer::start(home.path());
        write_codex_config(&home, &model, Mcp::StdioFlags);
        write_worker_commands(&home, true);
        let _daemon = Running::start(&home, "daemon", &["daemon", "--interval", "1"]);
        let ids = scenario(&home, &model);
        assert_clean_stdio_logs(&home, &ids);
    }

    fn assert_clean_stdio_logs(home: &Home, ids: &[String]) {
        for id in ids {
            let log = home.log(id);
            assert!(
                log.contains("mcp: hermes_kanban/kanban_show"),
                "{id}: Codex never called hermes_kanban/kanban_show:\n{log}"
            );
            let errors = mcp_errors(&log);
            assert!(
                errors.is_empty(),
                "{id}: MCP errors in the worker log:\n{log}"
            );
        }
    }

    /// docs/agents.md: the worker's stdio config also serves an interactive orchestrator
    /// session — no HERMES_KANBAN_* set, so the server offers the orchestrator tools.
    #[test]
    fn codex_orchestrator_session_gets_the_orchestrator_tools() {
        let home = Home::new();
        let model = ModelServer::start(home.path());
        write_codex_config(&home, &model, Mcp::Stdio);
        home.hk(&["init"]);
        let mut c = Command::new(codex_bin());
        home.env(&mut c);
        let out = c
            .args(["exec", "--skip-git-repo-check", "--ephemeral"])
            .args([
                "--sandbox",
                "workspace-write",
                "-m",
                "scripted-list-tools",
                "-C",
            ])
            .arg(home.path())
            .arg("what is on the board?")
            .output()
            .expect("run codex exec");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "codex exec failed:\n{text}");
        assert!(mcp_errors(&text).is_empty(), "MCP errors:\n{text}");
        let reqs = model.requests();
        let tools = reqs
            .iter()
            .filter_map(|r| r["body"]["tools"].as_array())
            .flatten()
            .find(|t| t["name"] == "mcp__hermes_kanban")
            .unwrap_or_else(|| panic!("no mcp__hermes_kanban namespace offered:\n{text}"));
        let names: Vec<&str> = tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        for want in [
            "kanban_list",
            "kanban_create",
            "kanban_unblock",
            "kanban_show",
        ] {
            assert!(names.contains(&want), "{want} not offered: {names:?}");
        }
    }

    #[test]
    fn codex_worker_over_http_mcp_with_the_run_token() {
        let home = Home::new();
        let model = ModelServer::start(home.path());
        write_worker_commands(&home, false);
        // serve runs the dispatcher too; its MCP endpoint takes each worker's per-run token.
        let mut serve = Running::start(
            &home,
            "serve",
            &["serve", "--bind", "127.0.0.1:0", "--interval", "1"],
        );
        let port = serve.served_port();
        write_codex_config(&home, &model, Mcp::Http { port });
        let ids = scenario(&home, &model);
        for id in &ids {
            let log = home.log(id);
            assert!(
                log.contains("mcp: hermes_kanban/kanban_show (completed)"),
                "{id}: Codex's kanban_show over HTTP did not complete:\n{log}"
            );
            // Codex closes its session (DELETE /mcp) after the run has ended, and its token with
            // it; that used to be answered 401, which Codex logs as an error (issue 10).
            assert!(
                !log.contains("fail to delete session"),
                "{id}: Codex could not close its MCP session:\n{log}"
            );
            let errors = mcp_errors(&log);
            assert!(
                errors.is_empty(),
                "{id}: MCP errors in the worker log:\n{log}"
            );
        }
    }
}

mod hermes {
    use super::*;

    /// How long one real Hermes run may take: a start is ~15 s on a loaded 2-core machine
    /// (Python imports, plugin discovery), generous so a busy CI box does not fail the test.
    const AGENT_DEADLINE: Duration = Duration::from_secs(300);

    /// The real `hermes` 0.19.0: `$HK_HERMES`, else `target/hermes-venv/bin/hermes`. Panics
    /// (never skips) with the install command when it is missing.
    fn hermes_bin() -> PathBuf {
        let p = std::env::var_os("HK_HERMES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hermes-venv/bin/hermes")
            });
        assert!(
            p.is_file(),
            "the real Hermes Agent is missing at {}: run `bash scripts/interop --install-only` (or \
             set HK_HERMES)",
            p.display()
        );
        p
    }

    /// The `model:` section pointing Hermes at the scripted server with `script` as its model.
    fn model_yaml(model: &ModelServer, script: &str) -> String {
        format!(
            "model:\n  provider: custom\n  base_url: {}\n  default: {script}\n  api_key: \
             scripted-key\n",
            model.base_url()
        )
    }

    /// A home with the Hermes profiles `(name, script)` (each one's model is `script` on the
    /// scripted server logging into the home) and an initialised board.
    fn hermes_lab(profiles: &[(&str, &str)]) -> (Home, ModelServer) {
        let home = Home::new();
        let model = ModelServer::start(home.path());
        for (name, script) in profiles {
            let dir = home.hermes_home().join("profiles").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.yaml"), model_yaml(&model, script)).unwrap();
        }
        home.hk(&["init"]);
        (home, model)
    }

    /// Our CLI with `HERMES_BIN` set to the real Hermes.
    fn hk_hermes(home: &Home, args: &[&str]) -> Value {
        let mut c = Command::new(HK);
        home.env(&mut c);
        let out = c
            .env("HERMES_BIN", hermes_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "$ hermes-kanban {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The chat-completion request bodies that mention `needle`.
    fn chat_requests_mentioning(model: &ModelServer, needle: &str) -> Vec<Value> {
        model
            .requests()
            .into_iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/chat/completions"))
            })
            .map(|r| r["body"].clone())
            .filter(|b| b["messages"].to_string().contains(needle))
            .collect()
    }

    /// The names of the tools offered in one chat request.
    fn offered_tools(body: &Value) -> Vec<String> {
        body["tools"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The tool results (role `tool` message contents) the model received in `requests`.
    fn tool_results(requests: &[Value]) -> Vec<String> {
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

    /// Done with the scripted hand-off; Hermes adds its own `worker_session_id` to the
    /// metadata the model sent.
    fn assert_done_by_hermes(home: &Home, id: &str) {
        let show = home.show(id);
        assert_eq!(show["task"]["status"], "done", "{id}: {show:#}");
        let want = format!("scripted summary for {id}");
        assert_eq!(show["latest_summary"], want.as_str(), "{id}: {show:#}");
        let runs = home.runs(id);
        assert_eq!(runs.len(), 1, "one attempt: {runs:#?}");
        let run = &runs[0];
        assert_eq!(run["outcome"], "completed", "{id}: {runs:#?}");
        assert_eq!(run["profile"], "worker");
        assert_eq!(run["summary"], want.as_str(), "{id}: {runs:#?}");
        assert_eq!(run["metadata"]["scripted"], true, "{id}: {runs:#?}");
        assert_eq!(run["metadata"]["task"], id, "{id}: {runs:#?}");
        assert!(
            run["metadata"]["worker_session_id"].is_string(),
            "Hermes records its session: {runs:#?}"
        );
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

    /// Both tasks of the chain done by real Hermes workers, and the child's `kanban_show` (the
    /// tool result its model got) carrying the parent's hand-off.
    fn assert_chain_done(home: &Home, model: &ModelServer, parent: &str, child: &str) {
        home.wait_statuses(&[(parent, &["done"]), (child, &["done"])], AGENT_DEADLINE);
        assert_done_by_hermes(home, parent);
        assert_done_by_hermes(home, child);
        // The argv Hermes was started with: no kanban-worker skill (the profile has none).
        let log = home.log(parent);
        assert!(
            log.contains(&format!(
                "-p worker --cli --accept-hooks chat -q work kanban task {parent}"
            )),
            "{log}"
        );
        let child_reqs = chat_requests_mentioning(model, child);
        assert!(!child_reqs.is_empty(), "the child's worker asked the model");
        assert!(
            offered_tools(&child_reqs[0])
                .iter()
                .any(|t| t == "kanban_complete"),
            "Hermes' native kanban tools are offered to the worker"
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
        let (home, model) = hermes_lab(&[("worker", "scripted-complete")]);
        let parent = home.create("research the API", &["--assignee", "worker"]);
        let child = home.create(
            "write it up",
            &["--assignee", "worker", "--parent", &parent],
        );
        let r = hk_hermes(&home, &["dispatch", "--json"]);
        assert_eq!(r["spawned"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["spawned"][0]["task_id"], parent.as_str(), "{r}");
        home.wait_statuses(&[(&parent, &["done"])], AGENT_DEADLINE);
        let r = hk_hermes(&home, &["dispatch", "--json"]);
        assert_eq!(r["spawned"][0]["task_id"], child.as_str(), "{r}");
        assert_chain_done(&home, &model, &parent, &child);
    }

    #[test]
    fn the_daemon_runs_a_parent_child_chain_with_the_real_hermes() {
        let (home, model) = hermes_lab(&[("worker", "scripted-complete")]);
        let parent = home.create("collect the numbers", &["--assignee", "worker"]);
        let child = home.create(
            "chart the numbers",
            &["--assignee", "worker", "--parent", &parent],
        );
        let bin = hermes_bin();
        let mut c = Command::new(HK);
        home.env(&mut c);
        let mut daemon = c
            .env("HERMES_BIN", &bin)
            .args(["daemon", "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert_chain_done(&home, &model, &parent, &child);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = daemon.wait();
    }

    /// A worker whose model blocks ends `blocked` with the model's reason; one whose model
    /// answers without completing or blocking is a protocol violation (with `--max-retries 1`
    /// the breaker blocks it). A task pinned to another model and provider (`create --model
    /// --provider --reasoning`) on the quitter's profile runs that model and completes: `-m`
    /// and `--provider` reach Hermes, and `--reasoning`, which 0.19.0 does not accept, is left
    /// out. All three run at once from one tick.
    #[test]
    fn real_hermes_workers_that_block_or_quit_are_settled_as_such() {
        let (home, model) =
            hermes_lab(&[("blocker", "scripted-block"), ("quitter", "scripted-quit")]);
        let b = home.create("needs a decision", &["--assignee", "blocker"]);
        let q = home.create(
            "forgets to finish",
            &["--assignee", "quitter", "--max-retries", "1"],
        );
        let pinned = home.create(
            "pinned to the completing model",
            &[
                "--assignee",
                "quitter",
                "--model",
                "scripted-complete",
                "--provider",
                "custom",
                "--reasoning",
                "high",
            ],
        );
        let r = hk_hermes(&home, &["dispatch", "--json"]);
        assert_eq!(r["spawned"].as_array().unwrap().len(), 3, "{r}");
        home.wait_statuses(
            &[(&b, &["blocked"]), (&q, &["blocked"]), (&pinned, &["done"])],
            AGENT_DEADLINE,
        );
        let log = home.log(&pinned);
        assert!(
            log.contains(&format!(
                "-p quitter --cli --accept-hooks -m scripted-complete --provider custom chat -q \
                 work kanban task {pinned}"
            )),
            "{log}"
        );
        let runs = home.runs(&pinned);
        assert_eq!(runs[0]["summary"], format!("scripted summary for {pinned}"));
        assert_blocked_by_worker(&home, &b);
        let blocked = home.show(&b)["events"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|e| e["kind"] == "blocked")
            .cloned()
            .unwrap();
        assert_eq!(blocked["payload"]["reason"], "scripted: need a decision");
        assert_protocol_violation(&home, &q);
        // The model was asked and answered text: the violation is the worker's, not a crash.
        assert!(!chat_requests_mentioning(&model, &q).is_empty());
    }

    /// The ```yaml block of README.md that holds `mcp_servers:` (what a user pastes into
    /// Hermes' config.yaml).
    fn readme_mcp_servers_yaml() -> String {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        readme
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("mcp_servers:") && b.contains("hermes_kanban:"))
            .expect("README.md has a ```yaml block with mcp_servers: hermes_kanban:")
            .to_string()
    }

    /// Hermes lists our tools to the model when the MCP server is named `hermes_kanban` (as
    /// prefixed `mcp__hermes_kanban__kanban_*` tools); under the name `kanban` it registers
    /// them and then never sends them, because the name collides with its built-in `kanban`
    /// toolset. That is why the README documents `hermes_kanban`.
    #[test]
    fn hermes_as_an_mcp_client_sends_our_tools_under_hermes_kanban_but_not_kanban() {
        let (home, model) = hermes_lab(&[]);
        let task = home.create("visible through MCP", &["--assignee", "worker"]);
        let mut runs = Vec::new();
        for name in ["hermes_kanban", "kanban"] {
            // One Hermes home per server name, each pointing its MCP client at our board.
            let h = home.path().join(format!("client-{name}"));
            std::fs::create_dir_all(&h).unwrap();
            // The README's `mcp_servers` snippet as pasted, with only the binary path, the
            // home and (for the collision case) the server name filled in.
            let snippet = readme_mcp_servers_yaml()
                .replace("command: hermes-kanban", &format!("command: {HK}"))
                .replace(
                    "/home/you/.hermes",
                    &home.hermes_home().display().to_string(),
                )
                .replace("  hermes_kanban:", &format!("  {name}:"));
            std::fs::write(
                h.join("config.yaml"),
                format!("{}{snippet}", model_yaml(&model, "scripted-list-tools")),
            )
            .unwrap();
            let mut c = Command::new(hermes_bin());
            home.env(&mut c);
            c.env("HERMES_HOME", &h)
                .args([
                    "--cli",
                    "chat",
                    "-q",
                    &format!("list the tools ({name}) for {task}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            runs.push((name, c.spawn().unwrap()));
        }
        for (name, mut child) in runs {
            let deadline = Instant::now() + AGENT_DEADLINE;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "hermes chat ({name}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tools_for = |name: &str| -> Vec<String> {
            let reqs = chat_requests_mentioning(&model, &format!("list the tools ({name})"));
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
}
