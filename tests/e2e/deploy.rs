//! Deployment (issue 8), checked without a Docker engine:
//!
//! - the `Dockerfile` copies only files that exist and that `.dockerignore`
//!   lets through, ships exactly SPEC §3's binaries under their `[[bin]]`
//!   names, and its dependency-caching skeleton stage yields a workspace
//!   that cargo loads;
//! - `docker-compose.yml` passes `docker-compose config -q` (where the
//!   client is installed), its start order and ports agree with the
//!   topology, and every project service's command passes `--check-config`
//!   with the service's environment, using only variables its binary knows;
//! - the CloudFormation template routes like `infra/topology.toml`, and a
//!   stack deployed to LocalStack has the same resources and attributes as
//!   `hookfleet infra apply` creates (one truth, two ways to deploy it);
//! - the image's healthcheck script tells a live ingest from a dead one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use hookfleet_bus::topology::{DLQ_SUFFIX, Topology};
use hookfleet_e2e::ingest::Ingest;
use hookfleet_e2e::process::{Output, free_port, run};
use hookfleet_e2e::{Aws, TestTopology, aws_env, endpoint, eventually, localstack, unique};
use serde_json::Value;
use serde_norway::Value as Yaml;

/// The binaries of SPEC §3: what the image ships.
const SPEC_BINARIES: [&str; 5] = [
    "hookfleet",
    "hookfleet-ingest",
    "hookfleet-analytics",
    "hookfleet-alerts",
    "hookfleet-crm",
];

/// The services docker-compose.yml runs from the project's image.
const PROJECT_SERVICES: [&str; 5] = ["infra", "ingest", "analytics", "alerts", "crm"];

/// Variables the binaries read without a clap flag (the AWS SDK and the
/// log filter), which `--help` therefore does not list.
const UNLISTED_VARIABLES: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RUST_LOG",
];

/// The topology queues each worker drains: its admin address is theirs.
const WORKER_QUEUES: [(&str, &[&str]); 3] = [
    ("hookfleet-analytics", &["hookfleet-analytics"]),
    ("hookfleet-alerts", &["hookfleet-alerts"]),
    ("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"]),
];

/// The prefix of every name in the shipped topology, and the template's
/// default `NamePrefix`.
const SHIPPED_PREFIX: &str = "hookfleet";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn shipped_topology() -> Topology {
    Topology::load(&repo().join("infra/topology.toml")).expect("infra/topology.toml loads")
}

/// Where `cargo build` puts the workspace's binaries for this test run.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

// --- the Dockerfile ------------------------------------------------------------

/// One instruction of the Dockerfile, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    /// The stage's name (`FROM ... AS name`), or its index.
    stage: String,
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions and its global `ARG` defaults.
struct Dockerfile {
    instructions: Vec<Instruction>,
    args: BTreeMap<String, String>,
}

impl Dockerfile {
    fn load() -> Self {
        let text = read("Dockerfile");
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Docker drops comment lines, even inside a continued instruction.
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(head) => {
                    current.push_str(head);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        assert!(
            current.is_empty(),
            "the Dockerfile ends inside a continuation"
        );

        let mut instructions = Vec::new();
        let mut args = BTreeMap::new();
        let mut stage: Option<String> = None;
        let mut stages = 0;
        for line in logical {
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let rest = rest.trim().to_owned();
            if keyword == "FROM" {
                let words: Vec<&str> = rest.split_whitespace().collect();
                stage = Some(match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    _ => stages.to_string(),
                });
                stages += 1;
            } else if keyword == "ARG"
                && stage.is_none()
                && let Some((name, value)) = rest.split_once('=')
            {
                args.insert(name.to_owned(), value.to_owned());
            }
            instructions.push(Instruction {
                stage: stage.clone().unwrap_or_default(),
                keyword,
                args: rest,
            });
        }
        Self { instructions, args }
    }

    fn in_stage<'a>(
        &'a self,
        stage: &'a str,
        keyword: &'a str,
    ) -> impl Iterator<Item = &'a Instruction> {
        self.instructions
            .iter()
            .filter(move |i| i.stage == stage && i.keyword == keyword)
    }

    /// The image of stage `stage`, with `${ARG}` resolved.
    fn base_image(&self, stage: &str) -> String {
        let from = self
            .in_stage(stage, "FROM")
            .next()
            .unwrap_or_else(|| panic!("no stage {stage}"));
        let image = from.args.split_whitespace().next().unwrap_or_default();
        match image
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(arg) => self.args.get(arg).cloned().unwrap_or_default(),
            None => image.to_owned(),
        }
    }

    /// `COPY` instructions of a stage as (`--from` stage, sources, destination).
    fn copies(&self, stage: &str) -> Vec<(Option<String>, Vec<String>, String)> {
        self.in_stage(stage, "COPY")
            .map(|copy| {
                assert!(
                    !copy.args.starts_with('['),
                    "use the plain form of COPY: {}",
                    copy.args
                );
                let mut from = None;
                let mut paths = Vec::new();
                for word in copy.args.split_whitespace() {
                    if let Some(stage) = word.strip_prefix("--from=") {
                        from = Some(stage.to_owned());
                    } else if !word.starts_with("--") {
                        paths.push(word.to_owned());
                    }
                }
                let destination = paths.pop().expect("COPY has a destination");
                (from, paths, destination)
            })
            .collect()
    }

    /// `ENV` of a stage, as a map.
    fn env(&self, stage: &str) -> BTreeMap<String, String> {
        self.in_stage(stage, "ENV")
            .flat_map(|env| {
                env.args
                    .split_whitespace()
                    .map(|pair| {
                        let (key, value) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("ENV {pair}: use KEY=VALUE"));
                        (key.to_owned(), value.to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The last stage: the image that runs.
    fn runtime_stage(&self) -> String {
        self.instructions
            .last()
            .expect("the Dockerfile is not empty")
            .stage
            .clone()
    }

    /// Where `source` (a path in the build context) lands in the image.
    fn destination_of(&self, source: &str) -> String {
        let stage = self.runtime_stage();
        self.copies(&stage)
            .into_iter()
            .find(|(from, sources, _)| from.is_none() && sources.iter().any(|s| s == source))
            .map(|(_, _, destination)| destination)
            .unwrap_or_else(|| panic!("the runtime stage does not copy {source}"))
    }
}

/// `.dockerignore`: which context paths Docker leaves out.
struct DockerIgnore {
    /// (negated, pattern segments), in file order: the last match decides.
    patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn load() -> Self {
        let patterns = read(".dockerignore")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (negated, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let segments = pattern
                    .trim_matches('/')
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .collect();
                (negated, segments)
            })
            .collect();
        Self { patterns }
    }

    /// Whether `relative` (or a directory holding it) is left out.
    fn excludes(&self, relative: &str) -> bool {
        let path: Vec<&str> = relative
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let mut excluded = false;
        for (negated, pattern) in &self.patterns {
            let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
            if (1..=path.len()).any(|n| glob_path(&pattern, &path[..n])) {
                excluded = !negated;
            }
        }
        excluded
    }
}

/// Docker's pattern syntax: `**` any number of segments, `*` and `?`
/// within one.
fn glob_path(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| glob_path(rest, &path[skip..])),
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(head, tail)| glob_segment(first, head) && glob_path(rest, tail)),
    }
}

fn glob_segment(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|skip| go(rest, &t[skip..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(&p, &t)
}

/// Every `[[bin]]` of the workspace (or the package's own name for an
/// implicit `src/main.rs`).
fn workspace_binaries() -> BTreeSet<String> {
    let mut binaries = BTreeSet::new();
    let crates = repo().join("crates");
    for entry in std::fs::read_dir(&crates).expect("read crates/") {
        let dir = entry.expect("crates/ entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let manifest: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", dir.display()));
        let bins = manifest.get("bin").and_then(toml::Value::as_array);
        match bins {
            Some(bins) => binaries.extend(
                bins.iter()
                    .filter_map(|bin| bin.get("name")?.as_str().map(str::to_owned)),
            ),
            None if dir.join("src/main.rs").exists() => {
                if let Some(name) = manifest
                    .get("package")
                    .and_then(|p| p.get("name"))
                    .and_then(toml::Value::as_str)
                {
                    binaries.insert(name.to_owned());
                }
            }
            None => {}
        }
    }
    binaries
}

/// Which compose service runs `binary`.
fn service_of(compose: &Compose, binary: &str) -> Option<String> {
    compose
        .project_services()
        .into_iter()
        .find(|service| compose.command(service).first().map(String::as_str) == Some(binary))
}

#[test]
fn dockerfile_copies_existing_files_and_ships_the_spec_binaries() {
    let dockerfile = Dockerfile::load();
    let ignore = DockerIgnore::load();
    let compose = Compose::load();
    let runtime = dockerfile.runtime_stage();
    let mut problems = Vec::new();

    // Pinned bases: the workspace's Rust, Debian slim at run time.
    let rust_version = {
        let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
        manifest["workspace"]["package"]["rust-version"]
            .as_str()
            .expect("workspace rust-version")
            .to_owned()
    };
    let builder_image = dockerfile.base_image("builder");
    assert_eq!(
        builder_image,
        format!("rust:{rust_version}-bookworm"),
        "the builder must use the workspace's rust-version"
    );
    assert_eq!(dockerfile.base_image(&runtime), "debian:bookworm-slim");

    // Every COPY from the build context names something that exists and
    // that .dockerignore does not leave out.
    for stage in dockerfile
        .instructions
        .iter()
        .map(|i| i.stage.clone())
        .collect::<BTreeSet<_>>()
    {
        for (from, sources, destination) in dockerfile.copies(&stage) {
            if from.is_some() {
                continue;
            }
            for source in sources {
                if source == "." {
                    continue;
                }
                if !repo().join(&source).exists() {
                    problems.push(format!(
                        "stage {stage}: COPY {source} {destination}: no such file"
                    ));
                } else if ignore.excludes(&source) {
                    problems.push(format!(
                        "stage {stage}: COPY {source} {destination}: .dockerignore leaves it out"
                    ));
                }
            }
        }
    }

    // The binaries copied into the runtime image: SPEC §3's, each a
    // [[bin]] of the workspace, each the command of a compose service.
    let workspace = workspace_binaries();
    let mut shipped = BTreeSet::new();
    for (from, sources, destination) in dockerfile.copies(&runtime) {
        if from.as_deref() != Some("builder") {
            continue;
        }
        assert_eq!(
            destination, "/usr/local/bin/",
            "binaries go to /usr/local/bin"
        );
        for source in sources {
            let name = source
                .strip_prefix("/src/target/release/")
                .unwrap_or_else(|| panic!("{source} is not a release binary"))
                .to_owned();
            if !workspace.contains(&name) {
                problems.push(format!(
                    "the image ships {name}, but no workspace crate has a [[bin]] of that name \
                     (there are: {workspace:?})"
                ));
            }
            shipped.insert(name);
        }
    }
    assert_eq!(
        shipped,
        SPEC_BINARIES.iter().map(|s| s.to_string()).collect(),
        "the runtime image ships exactly SPEC §3's binaries"
    );
    for service in compose.project_services() {
        let binary = compose.command(&service)[0].clone();
        if !shipped.contains(&binary) {
            problems.push(format!(
                "compose service {service} runs {binary}, which the image does not ship"
            ));
        }
    }

    // The build: all binaries, from the lock file.
    let builds: Vec<&str> = dockerfile
        .in_stage("builder", "RUN")
        .map(|run| run.args.as_str())
        .collect();
    assert!(
        builds
            .iter()
            .any(|run| run.contains("cargo build --release --locked --bins")),
        "the builder runs `cargo build --release --locked --bins`: {builds:?}"
    );

    // Runtime settings: the topology where HOOKFLEET_TOPOLOGY says, JSON
    // logs, a non-root user, a healthcheck that is in the image.
    let env = dockerfile.env(&runtime);
    assert_eq!(
        env.get("HOOKFLEET_TOPOLOGY"),
        Some(&dockerfile.destination_of("infra/topology.toml")),
        "HOOKFLEET_TOPOLOGY names the copied topology"
    );
    assert_eq!(
        env.get("HOOKFLEET_LOG_FORMAT").map(String::as_str),
        Some("json")
    );
    let user = dockerfile
        .in_stage(&runtime, "USER")
        .last()
        .map(|u| u.args.clone())
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root",
        "the image runs as a non-root user, not {user}"
    );

    let healthcheck = dockerfile
        .in_stage(&runtime, "HEALTHCHECK")
        .next()
        .expect("the runtime stage has a HEALTHCHECK");
    let probe = dockerfile.destination_of("infra/docker/healthcheck");
    let probe_name = probe.rsplit('/').next().unwrap_or_default();
    assert!(
        healthcheck
            .args
            .contains(&format!("CMD [\"{probe_name}\"]")),
        "HEALTHCHECK runs {probe_name}: {}",
        healthcheck.args
    );
    assert!(probe.starts_with("/usr/local/bin/"), "{probe} is on PATH");
    let script = repo().join("infra/docker/healthcheck");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&script)
            .expect("healthcheck script")
            .permissions(),
    );
    assert!(
        mode & 0o111 != 0,
        "{} must be executable (the image keeps the mode)",
        script.display()
    );

    assert!(problems.is_empty(), "Dockerfile:\n{}", problems.join("\n"));
}

/// Copies the build context (what `.dockerignore` lets through) to `to`.
fn copy_context(ignore: &DockerIgnore, from: &Path, relative: &str, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        if ignore.excludes(&path) {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        let target = to.join(&name);
        if kind.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_context(ignore, &entry.path(), &path, &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The dependency-caching stage is the Dockerfile's own shell script: run
/// it on a copy of the build context and check that cargo loads the
/// skeleton it makes, with every target present and the lock file as is.
#[tokio::test]
async fn dockerfile_skeleton_stage_yields_a_workspace_cargo_loads() {
    let dockerfile = Dockerfile::load();
    let ignore = DockerIgnore::load();
    let scratch = std::env::temp_dir().join(unique("hf-docker-context"));
    let context = scratch.join("src");
    let skeleton = scratch.join("skeleton");
    std::fs::create_dir_all(&context).expect("mkdir");
    copy_context(&ignore, &repo(), "", &context);

    let planner: Vec<&Instruction> = dockerfile.in_stage("planner", "RUN").collect();
    assert_eq!(planner.len(), 1, "the planner stage has one RUN");
    let script = planner[0]
        .args
        .replace("/skeleton", &skeleton.display().to_string());
    let made = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&context)
        .output()
        .await
        .expect("run sh");
    assert!(
        made.status.success(),
        "the planner script failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    // The builder copies the skeleton and builds: a package without
    // binaries makes cargo load every manifest and find every target file
    // (a missing one is an error) without compiling anything.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let loaded = tokio::process::Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--offline",
            "--bins",
            "-p",
            "hookfleet-e2e",
        ])
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .current_dir(&skeleton)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&loaded.stderr).into_owned();
    let lock_kept = std::fs::read(skeleton.join("Cargo.lock")).ok()
        == std::fs::read(context.join("Cargo.lock")).ok();
    std::fs::remove_dir_all(&scratch).ok();

    assert!(
        loaded.status.success(),
        "cargo cannot load the Dockerfile's skeleton:\n{stderr}"
    );
    assert!(lock_kept, "building the skeleton changed Cargo.lock");
}

// --- docker-compose.yml --------------------------------------------------------

/// docker-compose.yml, anchors and merge keys resolved.
struct Compose {
    file: Yaml,
}

impl Compose {
    fn load() -> Self {
        let mut file: Yaml =
            serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses");
        file.apply_merge().expect("merge keys resolve");
        Self { file }
    }

    fn service(&self, name: &str) -> &Yaml {
        let service = &self.file["services"][name];
        assert!(
            service.is_mapping(),
            "docker-compose.yml has no service {name}"
        );
        service
    }

    /// Services built from this repository (the project's image).
    fn project_services(&self) -> Vec<String> {
        self.file["services"]
            .as_mapping()
            .expect("services")
            .iter()
            .filter(|(_, service)| service.get("build").is_some())
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect()
    }

    /// A service's command, in the list form this file uses.
    fn command(&self, name: &str) -> Vec<String> {
        self.service(name)["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("service {name}: write command as a list"))
            .iter()
            .map(|word| word.as_str().expect("command words are strings").to_owned())
            .collect()
    }

    /// A service's environment as the container gets it: the image's ENV,
    /// then the file's, `${NAME:-default}` resolved to its default (not
    /// the shell's value, so the test does not depend on the caller), and
    /// variables listed without a value (passed through from the shell)
    /// left out.
    fn environment(
        &self,
        name: &str,
        image_env: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut env = image_env.clone();
        let Some(entries) = self.service(name).get("environment") else {
            return env;
        };
        let entries = entries
            .as_mapping()
            .unwrap_or_else(|| panic!("service {name}: write environment as a mapping"));
        for (key, value) in entries {
            let key = key.as_str().expect("variable names are strings").to_owned();
            let value = match value {
                Yaml::Null => {
                    env.remove(&key);
                    continue;
                }
                Yaml::String(text) => text.clone(),
                Yaml::Number(number) => number.to_string(),
                Yaml::Bool(flag) => flag.to_string(),
                other => panic!("service {name}: {key} = {other:?} is not a scalar"),
            };
            let value =
                interpolate(&value).unwrap_or_else(|e| panic!("service {name}: {key}: {e}"));
            env.insert(key, value);
        }
        env
    }

    /// Published ports of a service: container port -> (host address, host port).
    fn ports(&self, name: &str) -> BTreeMap<u16, (String, u16)> {
        let Some(ports) = self.service(name).get("ports") else {
            return BTreeMap::new();
        };
        ports
            .as_sequence()
            .unwrap_or_else(|| panic!("service {name}: ports is a list"))
            .iter()
            .map(|port| {
                let text = port
                    .as_str()
                    .unwrap_or_else(|| panic!("service {name}: quote port {port:?}"));
                let parts: Vec<&str> = text.split(':').collect();
                let number = |s: &str| -> u16 {
                    s.trim_end_matches("/tcp")
                        .parse()
                        .unwrap_or_else(|_| panic!("service {name}: port {text}"))
                };
                match parts.as_slice() {
                    [host, container] => (number(container), ("0.0.0.0".to_owned(), number(host))),
                    [address, host, container] => {
                        (number(container), ((*address).to_owned(), number(host)))
                    }
                    _ => panic!("service {name}: port {text}"),
                }
            })
            .collect()
    }

    fn condition(&self, service: &str, dependency: &str) -> Option<String> {
        self.service(service)
            .get("depends_on")?
            .get(dependency)?
            .get("condition")?
            .as_str()
            .map(str::to_owned)
    }
}

/// Compose's interpolation, taking defaults: `$$` is `$`,
/// `${NAME:-default}` and `${NAME-default}` are `default`. Anything
/// without a default would depend on the caller's shell: refused.
fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let expression = &tail[..end];
            let default = expression
                .split_once(":-")
                .or_else(|| expression.split_once('-'))
                .map(|(_, default)| default)
                .ok_or_else(|| {
                    format!("${{{expression}}} has no default: a fresh `docker compose up` would get \"\"")
                })?;
            out.push_str(default);
            rest = &tail[end + 1..];
        } else {
            return Err(format!(
                "{text:?}: write ${{NAME:-default}}, or $$ for a literal $"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A container's value as seen from this machine: `//service:port` and
/// `@service:port` become 127.0.0.1 and the published port; paths the
/// image copies from the repository become the repository's files.
fn on_host(value: &str, compose: &Compose, image_files: &[(String, PathBuf)]) -> String {
    let mut value = value.to_owned();
    for service in compose.file["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(Yaml::as_str)
    {
        let ports = compose.ports(service);
        for separator in ["//", "@"] {
            let needle = format!("{separator}{service}:");
            while let Some(at) = value.find(&needle) {
                let port_at = at + needle.len();
                let digits: String = value[port_at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let port: u16 = digits
                    .parse()
                    .unwrap_or_else(|_| panic!("{value}: no port after {needle}"));
                let host_port = ports.get(&port).map_or(port, |(_, published)| *published);
                value.replace_range(
                    at..port_at + digits.len(),
                    &format!("{separator}127.0.0.1:{host_port}"),
                );
            }
        }
    }
    for (in_image, in_repo) in image_files {
        if value == *in_image {
            return in_repo.display().to_string();
        }
    }
    value
}

/// The variable names a binary's `--help` lists (`[env: NAME=...]`).
fn listed_variables(help: &str) -> BTreeSet<String> {
    help.match_indices("[env: ")
        .map(|(at, marker)| {
            help[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn compose_file_is_valid_and_agrees_with_the_topology() {
    let compose = Compose::load();
    let dockerfile = Dockerfile::load();
    let image_env = dockerfile.env(&dockerfile.runtime_stage());
    let topology = shipped_topology();
    let mut problems = Vec::new();

    // docker-compose 1.29 validates offline; so does the v2 plugin.
    let file = repo().join("docker-compose.yml");
    let file = file.display().to_string();
    let clients: [(&str, Vec<&str>); 2] = [
        ("docker-compose", vec!["-f", &file, "config", "-q"]),
        ("docker", vec!["compose", "-f", &file, "config", "-q"]),
    ];
    let mut validated = false;
    for (client, args) in clients {
        let Ok(output) = std::process::Command::new(client)
            .args(&args)
            .current_dir(repo())
            .stdin(Stdio::null())
            .output()
        else {
            continue;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        // `docker compose` without the plugin: docker's usage error.
        if client == "docker"
            && (stderr.contains("unknown command") || stderr.contains("is not a docker command"))
        {
            continue;
        }
        assert!(
            output.status.success(),
            "{client} {}: {stderr}",
            args.join(" ")
        );
        validated = true;
        break;
    }
    if !validated {
        eprintln!(
            "\n*** SKIPPED: neither docker-compose nor `docker compose` is installed; \
             docker-compose.yml was not validated by a compose client ***\n"
        );
    }

    assert_eq!(
        compose
            .project_services()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        PROJECT_SERVICES.iter().map(|s| s.to_string()).collect(),
        "the services built from this repository"
    );

    // LocalStack: the version the test suite runs, with SNS and SQS.
    let pinned = read("infra/localstack/requirements.txt")
        .lines()
        .find_map(|line| line.strip_prefix("localstack-core==").map(str::to_owned))
        .expect("requirements.txt pins localstack-core");
    assert_eq!(
        compose.service("localstack")["image"].as_str(),
        Some(format!("localstack/localstack:{pinned}").as_str()),
        "the image LocalStack the tests run"
    );
    let services = compose.service("localstack")["environment"]["SERVICES"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect::<BTreeSet<_>>();
    for needed in ["sns", "sqs"] {
        assert!(
            services.contains(needed),
            "LocalStack SERVICES lacks {needed}"
        );
    }

    // Health-gated start order, on healthchecks that exist.
    let expect_condition =
        |problems: &mut Vec<String>, service: &str, on: &str, condition: &str| {
            let actual = compose.condition(service, on);
            if actual.as_deref() != Some(condition) {
                problems.push(format!(
                    "{service} must depend on {on} with condition {condition}, not {actual:?}"
                ));
            }
        };
    expect_condition(&mut problems, "infra", "localstack", "service_healthy");
    let probe = dockerfile.destination_of("infra/docker/healthcheck");
    let probe_name = probe.rsplit('/').next().unwrap_or_default().to_owned();
    for service in compose.project_services() {
        let env = compose.environment(&service, &image_env);
        if service != "infra" {
            expect_condition(
                &mut problems,
                &service,
                "infra",
                "service_completed_successfully",
            );
            let test = &compose.service(&service)["healthcheck"]["test"];
            if test.get(1).and_then(Yaml::as_str) != Some(probe_name.as_str()) {
                problems.push(format!(
                    "{service}: the healthcheck should run {probe_name}: {test:?}"
                ));
            }
        }
        if env.contains_key("DATABASE_URL") {
            expect_condition(&mut problems, &service, "postgres", "service_healthy");
        }
    }
    for dependency in ["localstack", "postgres"] {
        if compose.service(dependency).get("healthcheck").is_none() {
            problems.push(format!("{dependency} has no healthcheck to wait on"));
        }
    }

    // Ports: ingest's published as it listens; each worker's admin port is
    // its queues' `admin` in the topology and published on loopback, so
    // `hookfleet status` on the host finds the workers.
    let port_of = |address: &str| -> u16 {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("{address} is not host:port"))
    };
    let ingest = compose.environment("ingest", &image_env);
    let listen = port_of(
        ingest
            .get("HOOKFLEET_LISTEN")
            .map_or("0.0.0.0:8080", String::as_str),
    );
    if compose.ports("ingest").get(&listen).map(|(_, host)| *host) != Some(listen) {
        problems.push(format!(
            "ingest listens on {listen} but does not publish it"
        ));
    }
    for (binary, queues) in WORKER_QUEUES {
        let Some(service) = service_of(&compose, binary) else {
            problems.push(format!("no compose service runs {binary}"));
            continue;
        };
        let env = compose.environment(&service, &image_env);
        let Some(admin) = env.get("HOOKFLEET_ADMIN_LISTEN") else {
            problems.push(format!("{service}: HOOKFLEET_ADMIN_LISTEN is not set"));
            continue;
        };
        let port = port_of(admin);
        for queue in queues {
            let spec = topology
                .queue(queue)
                .unwrap_or_else(|| panic!("infra/topology.toml has no queue {queue}"));
            let expected = format!("127.0.0.1:{port}");
            if spec.admin.as_deref() != Some(expected.as_str()) {
                problems.push(format!(
                    "{service} listens on {admin}, but the topology gives {queue} admin {:?}",
                    spec.admin
                ));
            }
        }
        if compose.ports(&service).get(&port) != Some(&("127.0.0.1".to_owned(), port)) {
            problems.push(format!("{service}: publish \"127.0.0.1:{port}:{port}\""));
        }
    }

    assert!(
        problems.is_empty(),
        "docker-compose.yml:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn every_compose_service_passes_check_config_with_its_environment() {
    let compose = Compose::load();
    let dockerfile = Dockerfile::load();
    let runtime = dockerfile.runtime_stage();
    let image_env = dockerfile.env(&runtime);
    let image_files: Vec<(String, PathBuf)> = dockerfile
        .copies(&runtime)
        .into_iter()
        .filter(|(from, sources, _)| from.is_none() && sources.len() == 1)
        .map(|(_, sources, destination)| (destination, repo().join(&sources[0])))
        .collect();
    let mut problems = Vec::new();
    let mut checked = Vec::new();

    for service in compose.project_services() {
        let command = compose.command(&service);
        let binary = built(&command[0]);
        if !binary.exists() {
            problems.push(format!(
                "{service}: {} is not built (run `cargo build --workspace --bins`)",
                binary.display()
            ));
            continue;
        }
        let env: Vec<(String, String)> = compose
            .environment(&service, &image_env)
            .into_iter()
            .map(|(key, value)| {
                let value = on_host(&value, &compose, &image_files);
                (key, value)
            })
            .collect();
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();

        // Every variable is one the binary knows: a typo is not ignored.
        let mut asking = args.clone();
        asking.push("--help");
        let help = run(&binary, &asking, &[]).await;
        assert_eq!(
            help.code,
            Some(0),
            "{service}: {} --help: {help:?}",
            command.join(" ")
        );
        let known = listed_variables(&help.stdout);
        for (key, _) in &env {
            if !known.contains(key) && !UNLISTED_VARIABLES.contains(&key.as_str()) {
                problems.push(format!(
                    "{service}: {key} is not a variable of `{}` (its --help lists {known:?})",
                    command.join(" ")
                ));
            }
        }

        let mut checking = args.clone();
        checking.push("--check-config");
        let output: Output = run(&binary, &checking, &env).await;
        if output.code != Some(0) {
            problems.push(format!(
                "{service}: `{} --check-config` exited {:?}: {}{}\n  environment: {env:?}",
                command.join(" "),
                output.code,
                output.stderr.trim(),
                output.stdout.trim()
            ));
        }
        checked.push(service);
    }

    eprintln!("compose services passing --check-config: {checked:?}");
    assert!(
        problems.is_empty(),
        "docker-compose.yml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn compose_interpolation_and_host_mapping() {
    assert_eq!(interpolate("${A:-x y}/${B-z}$$").unwrap(), "x y/z$");
    assert!(interpolate("${A}").is_err());
    assert!(interpolate("$A").is_err());

    let compose = Compose::load();
    let files = [(
        "/etc/hookfleet/topology.toml".to_owned(),
        PathBuf::from("/repo/infra/topology.toml"),
    )];
    assert_eq!(
        on_host("http://localstack:4566", &compose, &files),
        "http://127.0.0.1:4566"
    );
    assert_eq!(
        on_host("postgres://u:p@postgres:5432/db", &compose, &files),
        "postgres://u:p@127.0.0.1:5432/db"
    );
    assert_eq!(
        on_host("/etc/hookfleet/topology.toml", &compose, &files),
        "/repo/infra/topology.toml"
    );

    let ignore = DockerIgnore::load();
    assert!(ignore.excludes("target/debug/hookfleet"));
    assert!(ignore.excludes("crates/x/GeoLite2-City.mmdb"));
    assert!(!ignore.excludes("crates/hookfleet-ingest/src/main.rs"));
    assert!(!ignore.excludes("infra/topology.toml"));
    assert!(!ignore.excludes("infra/docker/healthcheck"));

    let help = "  --x <X>\n    [env: HOOKFLEET_X=]\n  --s\n    [env: HOOKFLEET_SECRET]\n";
    assert_eq!(
        listed_variables(help),
        BTreeSet::from(["HOOKFLEET_X".to_owned(), "HOOKFLEET_SECRET".to_owned()])
    );
}

// --- CloudFormation --------------------------------------------------------------

const TEMPLATE: &str = "infra/cloudformation/hookfleet.yaml";

/// The template, with what its resources name resolved.
struct Template {
    file: Yaml,
}

impl Template {
    fn load() -> Self {
        Self {
            file: serde_norway::from_str(&read(TEMPLATE)).expect("the template parses"),
        }
    }

    fn resources(&self, kind: &str) -> Vec<(String, &Yaml)> {
        self.file["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
            .map(|(id, resource)| (id.as_str().expect("logical id").to_owned(), resource))
            .collect()
    }

    fn default_of(&self, parameter: &str) -> String {
        match &self.file["Parameters"][parameter]["Default"] {
            Yaml::String(text) => text.clone(),
            Yaml::Number(number) => number.to_string(),
            other => panic!("{TEMPLATE}: parameter {parameter} default {other:?}"),
        }
    }

    /// A `Fn::Sub` name with `NamePrefix` at its default.
    fn name(&self, value: &Yaml) -> String {
        let text = value["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{TEMPLATE}: expected Fn::Sub, found {value:?}"));
        text.replace("${NamePrefix}", &self.default_of("NamePrefix"))
    }
}

fn get_att(value: &Yaml) -> (String, String) {
    let pair = value["Fn::GetAtt"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{TEMPLATE}: expected Fn::GetAtt, found {value:?}"));
    let text = |i: usize| pair[i].as_str().expect("Fn::GetAtt words").to_owned();
    (text(0), text(1))
}

fn ref_of(value: &Yaml) -> Option<&str> {
    value["Ref"].as_str()
}

fn to_json(value: &Yaml) -> Value {
    serde_json::to_value(value).expect("YAML as JSON")
}

/// What AWS may change without changing the meaning: numbers and booleans
/// as strings, arrays in any order (every array here is a set) — as
/// `hookfleet infra apply` compares.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_cached_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect(),
        ),
        Value::Null | Value::String(_) => value.clone(),
    }
}

#[test]
fn cloudformation_template_describes_the_topology_file() {
    let template = Template::load();
    let topology = shipped_topology();
    let prefix = template.default_of("NamePrefix");
    assert_eq!(prefix, SHIPPED_PREFIX);

    // The topic.
    let topics = template.resources("AWS::SNS::Topic");
    assert_eq!(topics.len(), 1, "one topic");
    let (topic_id, topic) = &topics[0];
    assert_eq!(
        template.name(&topic["Properties"]["TopicName"]),
        topology.topic.name
    );

    // The queues: exactly the topology's and their DLQs.
    let queues: BTreeMap<String, (String, &Yaml)> = template
        .resources("AWS::SQS::Queue")
        .into_iter()
        .map(|(id, queue)| {
            (
                template.name(&queue["Properties"]["QueueName"]),
                (id, queue),
            )
        })
        .collect();
    let expected: BTreeSet<String> = topology
        .queues
        .iter()
        .flat_map(|q| [q.name.clone(), q.dlq_name()])
        .collect();
    assert_eq!(
        queues.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the template's queues"
    );

    let max_receive_count = template.default_of("MaxReceiveCount");
    let subscriptions = template.resources("AWS::SNS::Subscription");
    let policies = template.resources("AWS::SQS::QueuePolicy");
    assert_eq!(
        subscriptions.len(),
        topology.queues.len(),
        "one subscription per queue"
    );
    assert_eq!(
        policies.len(),
        topology.queues.len(),
        "one queue policy per queue"
    );

    for spec in &topology.queues {
        let (queue_id, queue) = &queues[&spec.name];
        let (dlq_id, dlq) = &queues[&spec.dlq_name()];
        let properties = &queue["Properties"];

        // Settings: the queue, its redrive policy, the DLQ.
        assert_eq!(
            max_receive_count,
            spec.max_receive_count.to_string(),
            "{}: MaxReceiveCount's default is the topology's max_receive_count \
             (the template has one for every queue)",
            spec.name
        );
        assert_eq!(
            properties["VisibilityTimeout"].as_u64(),
            Some(u64::from(spec.visibility_timeout_secs)),
            "{}: VisibilityTimeout",
            spec.name
        );
        assert_eq!(
            properties["MessageRetentionPeriod"].as_u64(),
            Some(u64::from(spec.message_retention_secs)),
            "{}: MessageRetentionPeriod",
            spec.name
        );
        let redrive = &properties["RedrivePolicy"];
        assert_eq!(
            get_att(&redrive["deadLetterTargetArn"]),
            (dlq_id.clone(), "Arn".to_owned()),
            "{}: RedrivePolicy names its DLQ",
            spec.name
        );
        assert_eq!(ref_of(&redrive["maxReceiveCount"]), Some("MaxReceiveCount"));
        assert_eq!(
            dlq["Properties"]["MessageRetentionPeriod"].as_u64(),
            Some(u64::from(spec.dlq_retention_secs)),
            "{}: DLQ retention",
            spec.name
        );
        let allow = &dlq["Properties"]["RedriveAllowPolicy"];
        assert_eq!(allow["redrivePermission"].as_str(), Some("byQueue"));
        let sources: Vec<String> = allow["sourceQueueArns"]
            .as_sequence()
            .expect("sourceQueueArns")
            .iter()
            .map(|arn| template.name(arn))
            .collect();
        assert_eq!(sources.len(), 1, "{}: one source queue", spec.name);
        assert!(
            sources[0].starts_with("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:")
                && sources[0].ends_with(&format!(":{}", spec.name)),
            "{}: the DLQ admits its queue only: {}",
            spec.name,
            sources[0]
        );
        assert!(dlq_id.ends_with("DeadLetterQueue") && queue_id.ends_with("Queue"));

        // The topic may send to the queue.
        let policy = policies
            .iter()
            .find(|(_, p)| {
                p["Properties"]["Queues"]
                    .as_sequence()
                    .is_some_and(|q| q.len() == 1 && ref_of(&q[0]) == Some(queue_id))
            })
            .unwrap_or_else(|| panic!("{}: no queue policy", spec.name));
        let statement = &policy.1["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(
            get_att(&statement["Resource"]),
            (queue_id.clone(), "Arn".to_owned())
        );
        assert_eq!(
            ref_of(&statement["Condition"]["ArnEquals"]["aws:SourceArn"]),
            Some(topic_id.as_str())
        );

        // Routing: the subscription's filter policy is the topology's.
        let (_, subscription) = subscriptions
            .iter()
            .find(|(_, s)| get_att(&s["Properties"]["Endpoint"]).0 == *queue_id)
            .unwrap_or_else(|| panic!("{}: no subscription", spec.name));
        let properties = &subscription["Properties"];
        assert_eq!(ref_of(&properties["TopicArn"]), Some(topic_id.as_str()));
        assert_eq!(properties["Protocol"].as_str(), Some("sqs"));
        assert_eq!(properties["RawMessageDelivery"].as_bool(), Some(true));
        assert_eq!(
            properties["FilterPolicyScope"].as_str(),
            Some("MessageAttributes")
        );
        assert_eq!(
            normalized(&to_json(&properties["FilterPolicy"])),
            normalized(&spec.filter.filter_policy()),
            "{}: the filter policy is the topology's ({})",
            spec.name,
            spec.filter
        );
    }

    // Outputs: the topic ARN and every queue's URL.
    let outputs = template.file["Outputs"].as_mapping().expect("Outputs");
    let referenced: BTreeSet<&str> = outputs
        .values()
        .filter_map(|output| ref_of(&output["Value"]))
        .collect();
    assert!(
        referenced.contains(topic_id.as_str()),
        "an output for the topic ARN"
    );
    for (name, (id, _)) in &queues {
        assert!(
            referenced.contains(id.as_str()),
            "an output for the URL of {name}"
        );
    }
}

/// `scripts/localstack aws ...`: the AWS CLI of the LocalStack venv.
/// The script always names 127.0.0.1; it gets the port of the suite's
/// endpoint.
fn localstack_aws(args: &[&str]) -> std::process::Command {
    let port = endpoint()
        .trim_end_matches('/')
        .rsplit_once(':')
        .map_or_else(|| "4566".to_owned(), |(_, port)| port.to_owned());
    let mut command = std::process::Command::new(repo().join("scripts/localstack"));
    command
        .arg("aws")
        .args(args)
        .env("HOOKFLEET_LOCALSTACK_PORT", port)
        .stdin(Stdio::null());
    command
}

async fn aws_cli(args: &[&str]) -> Output {
    let output = tokio::process::Command::from(localstack_aws(args))
        .output()
        .await
        .expect("run scripts/localstack aws");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Deletes the stack when dropped (a failed test too), without waiting.
struct Stack {
    name: String,
    deleted: bool,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = localstack_aws(&["cloudformation", "delete-stack", "--stack-name", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether LocalStack runs CloudFormation; `false` skips the test, except
/// under `CI=true`, where it fails.
async fn cloudformation_available() -> bool {
    let health = format!("{}/_localstack/health", endpoint());
    let services: Value = match hookfleet_e2e::reqwest_client().get(&health).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let state = services["services"]["cloudformation"]
        .as_str()
        .unwrap_or("absent");
    if matches!(state, "available" | "running") {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("LocalStack at {health} has no CloudFormation ({state}) and CI=true");
    }
    eprintln!(
        "\n*** SKIPPED: LocalStack's CloudFormation is {state}; start LocalStack with \
         scripts/localstack (SERVICES includes cloudformation) ***\n"
    );
    false
}

/// Attributes of a queue, by name.
async fn queue_attributes(aws: &Aws, name: &str) -> BTreeMap<String, String> {
    let url = hookfleet_e2e::topology::queue_url(aws, name).await;
    aws.sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("attributes of {name}: {e:?}"))
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key.as_str().to_owned(), value))
        .collect()
}

/// The topic's ARN and attributes, and its subscriptions' attributes by
/// the name of the queue they deliver to.
async fn topic_and_subscriptions(
    aws: &Aws,
    topic: &str,
) -> (
    String,
    HashMap<String, String>,
    BTreeMap<String, HashMap<String, String>>,
) {
    let arn = hookfleet_bus::resolve::topic_arn(&aws.sns, topic)
        .await
        .expect("list topics")
        .unwrap_or_else(|| panic!("no topic {topic}"));
    let attributes = aws
        .sns
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
        .expect("topic attributes")
        .attributes
        .unwrap_or_default();
    let listed = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&arn)
        .send()
        .await
        .expect("list subscriptions");
    let mut subscriptions = BTreeMap::new();
    for subscription in listed.subscriptions() {
        let queue = subscription
            .endpoint()
            .and_then(|arn| arn.rsplit(':').next())
            .expect("an sqs endpoint")
            .to_owned();
        let attributes = aws
            .sns
            .get_subscription_attributes()
            .subscription_arn(subscription.subscription_arn().expect("subscription arn"))
            .send()
            .await
            .expect("subscription attributes")
            .attributes
            .unwrap_or_default();
        assert!(
            subscriptions.insert(queue.clone(), attributes).is_none(),
            "two subscriptions of {topic} deliver to {queue}"
        );
    }
    (arn, attributes, subscriptions)
}

/// Attribute values with `prefix` written as `<prefix>` and JSON compared
/// by meaning, minus the attributes that differ between any two resources
/// (creation times, counters, subscription ids).
fn comparable<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a String)>,
    prefix: &str,
) -> BTreeMap<String, Value> {
    const VOLATILE: [&str; 6] = [
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "SubscriptionArn",
    ];
    attributes
        .into_iter()
        .filter(|(key, _)| !VOLATILE.contains(&key.as_str()))
        .map(|(key, value)| {
            let value = value.replace(prefix, "<prefix>");
            let value = match serde_json::from_str::<Value>(&value) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => normalized(&parsed),
                _ => Value::String(value),
            };
            (key.clone(), value)
        })
        .collect()
}

/// The attributes that differ between two resources, one line each, or
/// `None` when they are the same.
fn difference(
    what: &str,
    stack: &BTreeMap<String, Value>,
    apply: &BTreeMap<String, Value>,
) -> Option<String> {
    let keys: BTreeSet<&String> = stack.keys().chain(apply.keys()).collect();
    let lines: Vec<String> = keys
        .into_iter()
        .filter(|key| stack.get(*key) != apply.get(*key))
        .map(|key| {
            format!(
                "  {what} {key}: stack {}, apply {}",
                stack.get(key).map_or("(none)".to_owned(), Value::to_string),
                apply.get(key).map_or("(none)".to_owned(), Value::to_string)
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `infra/topology.toml` with `hookfleet-` names under another prefix.
fn renamed_topology(prefix: &str) -> String {
    let text = read("infra/topology.toml")
        .replace(&format!("\"{SHIPPED_PREFIX}-"), &format!("\"{prefix}-"));
    let renamed = Topology::from_toml(&text).expect("the renamed topology loads");
    assert!(
        renamed.topic.name.starts_with(prefix)
            && renamed.queues.iter().all(|q| q.name.starts_with(prefix)),
        "every name of infra/topology.toml starts with {SHIPPED_PREFIX}-"
    );
    text
}

/// The template deployed by CloudFormation and the topology file applied
/// by `hookfleet infra apply`, under two random prefixes, make the same
/// resources with the same attributes; and `hookfleet infra apply` run on
/// the stack's resources finds nothing to change.
#[tokio::test]
async fn cloudformation_stack_matches_what_infra_apply_creates() {
    let Some(aws) = localstack().await else {
        return;
    };
    if !cloudformation_available().await {
        return;
    }
    let shipped = shipped_topology();
    let stack_prefix = unique("hfcfn");
    let apply_prefix = unique("hfapply");
    let write = |prefix: &str| {
        let path = std::env::temp_dir().join(format!("{prefix}.toml"));
        std::fs::write(&path, renamed_topology(prefix)).expect("write topology");
        path
    };
    let stack_topology = write(&stack_prefix);
    let apply_topology = write(&apply_prefix);
    let env_for = |path: &Path| {
        let mut env = aws_env();
        env.push(("HOOKFLEET_TOPOLOGY".into(), path.display().to_string()));
        env
    };

    let mut stack = Stack {
        name: stack_prefix.clone(),
        deleted: false,
    };
    let template = repo().join(TEMPLATE).display().to_string();
    let parameter = format!("NamePrefix={stack_prefix}");
    let deploy_args = [
        "cloudformation",
        "deploy",
        "--stack-name",
        &stack.name,
        "--template-file",
        &template,
        "--parameter-overrides",
        &parameter,
        "--no-fail-on-empty-changeset",
    ];
    let cli = hookfleet_e2e::bin("hookfleet");
    let apply_env = env_for(&apply_topology);
    let deploy = aws_cli(&deploy_args);
    let apply = run(&cli, &["infra", "apply"], &apply_env);
    let (deployed, applied) = tokio::join!(deploy, apply);
    assert_eq!(
        deployed.code,
        Some(0),
        "cloudformation deploy: {deployed:?}"
    );
    assert_eq!(applied.code, Some(0), "hookfleet infra apply: {applied:?}");

    // Resource by resource: the queues and their DLQs...
    let name = |prefix: &str, shipped_name: &str| {
        format!(
            "{prefix}{}",
            shipped_name
                .strip_prefix(SHIPPED_PREFIX)
                .expect("shipped names start with the prefix")
        )
    };
    let mut differences = Vec::new();
    for spec in &shipped.queues {
        for queue in [spec.name.clone(), spec.dlq_name()] {
            let from_stack = queue_attributes(&aws, &name(&stack_prefix, &queue)).await;
            let from_apply = queue_attributes(&aws, &name(&apply_prefix, &queue)).await;
            let (stack_view, apply_view) = (
                comparable(&from_stack, &stack_prefix),
                comparable(&from_apply, &apply_prefix),
            );
            for key in ["VisibilityTimeout", "MessageRetentionPeriod"] {
                assert!(
                    stack_view.contains_key(key),
                    "{queue}: no {key}: {from_stack:?}"
                );
            }
            let key = if queue.ends_with(DLQ_SUFFIX) {
                "RedriveAllowPolicy"
            } else {
                "RedrivePolicy"
            };
            assert!(
                stack_view.contains_key(key),
                "{queue}: no {key}: {from_stack:?}"
            );
            differences.extend(difference(
                &format!("queue {queue}"),
                &stack_view,
                &apply_view,
            ));
        }
    }

    // ...the topic and its subscriptions.
    let (stack_topic, stack_topic_attributes, stack_subscriptions) =
        topic_and_subscriptions(&aws, &name(&stack_prefix, &shipped.topic.name)).await;
    let (_, apply_topic_attributes, apply_subscriptions) =
        topic_and_subscriptions(&aws, &name(&apply_prefix, &shipped.topic.name)).await;
    let (stack_view, apply_view) = (
        comparable(&stack_topic_attributes, &stack_prefix),
        comparable(&apply_topic_attributes, &apply_prefix),
    );
    differences.extend(difference("topic", &stack_view, &apply_view));
    let by_queue = |subscriptions: &BTreeMap<String, HashMap<String, String>>, prefix: &str| {
        subscriptions
            .iter()
            .map(|(queue, attributes)| {
                (
                    queue.replace(prefix, "<prefix>"),
                    comparable(attributes, prefix),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (stack_view, apply_view) = (
        by_queue(&stack_subscriptions, &stack_prefix),
        by_queue(&apply_subscriptions, &apply_prefix),
    );
    assert_eq!(stack_view.len(), shipped.queues.len(), "{stack_view:?}");
    for (queue, attributes) in &stack_view {
        for key in ["FilterPolicy", "FilterPolicyScope", "RawMessageDelivery"] {
            assert!(
                attributes.contains_key(key),
                "subscription {queue}: no {key}"
            );
        }
        let empty = BTreeMap::new();
        let applied = apply_view.get(queue).unwrap_or(&empty);
        differences.extend(difference(
            &format!("subscription {queue}"),
            attributes,
            applied,
        ));
    }
    assert!(
        differences.is_empty(),
        "the stack and `hookfleet infra apply` differ:\n{}",
        differences.join("\n")
    );

    // The outputs name the stack's topic and queues.
    let described = aws_cli(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack.name,
        "--output",
        "json",
    ])
    .await;
    assert_eq!(described.code, Some(0), "describe-stacks: {described:?}");
    let described: Value = serde_json::from_str(&described.stdout).expect("describe-stacks JSON");
    let outputs: BTreeMap<String, String> = described["Stacks"][0]["Outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            (
                o["OutputKey"].as_str().unwrap_or_default().to_owned(),
                o["OutputValue"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(outputs.get("TopicArn"), Some(&stack_topic), "{outputs:?}");
    for spec in &shipped.queues {
        let role = spec
            .name
            .strip_prefix(&format!("{SHIPPED_PREFIX}-"))
            .unwrap_or_default();
        let mut chars = role.chars();
        let role: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        for (key, queue) in [
            (format!("{role}QueueUrl"), spec.name.clone()),
            (format!("{role}DeadLetterQueueUrl"), spec.dlq_name()),
        ] {
            let url = outputs
                .get(&key)
                .unwrap_or_else(|| panic!("no output {key}: {outputs:?}"));
            let queue = name(&stack_prefix, &queue);
            assert!(
                url.ends_with(&format!("/{queue}")),
                "{key} = {url}, not {queue}"
            );
        }
    }
    assert_eq!(outputs.len(), 1 + 2 * shipped.queues.len(), "{outputs:?}");

    // `hookfleet infra apply` on the stack's names: nothing to change.
    let again = run(&cli, &["infra", "apply"], &env_for(&stack_topology)).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    let lines: Vec<&str> = again.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3 * shipped.queues.len(),
        "{}",
        again.stdout
    );
    assert!(
        lines.iter().all(|line| line.starts_with("unchanged ")),
        "infra apply would change the stack's resources:\n{}",
        again.stdout
    );

    // Delete the stack, and wait until CloudFormation has.
    let deleted = aws_cli(&[
        "cloudformation",
        "delete-stack",
        "--stack-name",
        &stack.name,
    ])
    .await;
    assert_eq!(deleted.code, Some(0), "delete-stack: {deleted:?}");
    stack.deleted = true;
    let stack_name = stack.name.clone();
    eventually(Duration::from_secs(120), "the stack's deletion", || {
        let stack_name = stack_name.clone();
        async move {
            let status = aws_cli(&[
                "cloudformation",
                "describe-stacks",
                "--stack-name",
                &stack_name,
                "--query",
                "Stacks[0].StackStatus",
                "--output",
                "text",
            ])
            .await;
            let gone = status.code != Some(0) || status.stdout.trim() == "DELETE_COMPLETE";
            gone.then_some(())
        }
    })
    .await;
    let topic_left =
        hookfleet_bus::resolve::topic_arn(&aws.sns, &name(&stack_prefix, &shipped.topic.name))
            .await
            .expect("list topics");
    assert_eq!(topic_left, None, "deleting the stack deletes its topic");

    std::fs::remove_file(&stack_topology).ok();
    std::fs::remove_file(&apply_topology).ok();
}

// --- the healthcheck -------------------------------------------------------------

/// Runs the image's healthcheck script with `env`, as Docker would.
async fn healthcheck(env: &[(String, String)], args: &[&str]) -> Output {
    run(&repo().join("infra/docker/healthcheck"), args, env).await
}

#[tokio::test]
async fn healthcheck_script_tells_a_live_ingest_from_a_dead_one() {
    // Ingest resolves its topic lazily: /healthz answers without LocalStack.
    let topology = TestTopology::new();
    let mut ingest = Ingest::start(&topology.env(), &[]).await;
    let port = ingest.base.rsplit(':').next().expect("a port").to_owned();
    // In the container ingest listens on the wildcard address.
    let env = vec![("HOOKFLEET_LISTEN".to_owned(), format!("0.0.0.0:{port}"))];

    let live = healthcheck(&env, &[]).await;
    assert_eq!(live.code, Some(0), "{live:?}");
    // HOOKFLEET_ADMIN_LISTEN (a worker's) comes first.
    let mut worker_env = env.clone();
    worker_env.push((
        "HOOKFLEET_ADMIN_LISTEN".to_owned(),
        format!("0.0.0.0:{}", free_port()),
    ));
    let elsewhere = healthcheck(&worker_env, &[]).await;
    assert_eq!(elsewhere.code, Some(1), "{elsewhere:?}");
    // Any other answer than 200 is unhealthy.
    let missing = healthcheck(&env, &[&format!("127.0.0.1:{port}"), "/no-such-page"]).await;
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.stderr.contains("404"), "{missing:?}");

    ingest.process.sigkill();
    ingest.process.wait(Duration::from_secs(10)).await;
    let dead = healthcheck(&env, &[]).await;
    assert_eq!(dead.code, Some(1), "{dead:?}");
    assert!(dead.stderr.contains("unhealthy"), "{dead:?}");
}
