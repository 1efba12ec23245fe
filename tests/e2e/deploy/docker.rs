//! The Dockerfile: what it copies, what it ships, and its caching stage.

use super::*;

/// One instruction of the Dockerfile, continuation lines joined.
#[derive(Debug)]
pub(super) struct Instruction {
    /// The stage's name (`FROM ... AS name`), or its index.
    pub(super) stage: String,
    pub(super) keyword: String,
    pub(super) args: String,
}

/// The Dockerfile's instructions and its global `ARG` defaults.
pub(super) struct Dockerfile {
    pub(super) instructions: Vec<Instruction>,
    pub(super) args: BTreeMap<String, String>,
}

impl Dockerfile {
    pub(super) fn load() -> Self {
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

    pub(super) fn in_stage<'a>(
        &'a self,
        stage: &'a str,
        keyword: &'a str,
    ) -> impl Iterator<Item = &'a Instruction> {
        self.instructions
            .iter()
            .filter(move |i| i.stage == stage && i.keyword == keyword)
    }

    /// The image of stage `stage`, with `${ARG}` resolved.
    pub(super) fn base_image(&self, stage: &str) -> String {
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
    pub(super) fn copies(&self, stage: &str) -> Vec<(Option<String>, Vec<String>, String)> {
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
    pub(super) fn env(&self, stage: &str) -> BTreeMap<String, String> {
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
    pub(super) fn runtime_stage(&self) -> String {
        self.instructions
            .last()
            .expect("the Dockerfile is not empty")
            .stage
            .clone()
    }

    /// Where `source` (a path in the build context) lands in the image.
    pub(super) fn destination_of(&self, source: &str) -> String {
        let stage = self.runtime_stage();
        self.copies(&stage)
            .into_iter()
            .find(|(from, sources, _)| from.is_none() && sources.iter().any(|s| s == source))
            .map(|(_, _, destination)| destination)
            .unwrap_or_else(|| panic!("the runtime stage does not copy {source}"))
    }
}

/// `.dockerignore`: which context paths Docker leaves out.
pub(super) struct DockerIgnore {
    /// (negated, pattern segments), in file order: the last match decides.
    pub(super) patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    pub(super) fn load() -> Self {
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
    pub(super) fn excludes(&self, relative: &str) -> bool {
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
pub(super) fn glob_path(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| glob_path(rest, &path[skip..])),
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(head, tail)| glob_segment(first, head) && glob_path(rest, tail)),
    }
}

pub(super) fn glob_segment(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    pub(super) fn go(p: &[char], t: &[char]) -> bool {
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
pub(super) fn workspace_binaries() -> BTreeSet<String> {
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
pub(super) fn service_of(compose: &Compose, binary: &str) -> Option<String> {
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
pub(super) fn copy_context(ignore: &DockerIgnore, from: &Path, relative: &str, to: &Path) {
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
