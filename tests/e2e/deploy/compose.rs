//! docker-compose.yml: valid, agreeing with the topology, and every service's environment accepted by its binary's `--check-config`.

use super::*;

/// docker-compose.yml, anchors and merge keys resolved.
pub(super) struct Compose {
    pub(super) file: Yaml,
}

impl Compose {
    pub(super) fn load() -> Self {
        let mut file: Yaml =
            serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses");
        file.apply_merge().expect("merge keys resolve");
        Self { file }
    }

    pub(super) fn service(&self, name: &str) -> &Yaml {
        let service = &self.file["services"][name];
        assert!(
            service.is_mapping(),
            "docker-compose.yml has no service {name}"
        );
        service
    }

    /// Services built from this repository (the project's image).
    pub(super) fn project_services(&self) -> Vec<String> {
        self.file["services"]
            .as_mapping()
            .expect("services")
            .iter()
            .filter(|(_, service)| service.get("build").is_some())
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect()
    }

    /// A service's command, in the list form this file uses.
    pub(super) fn command(&self, name: &str) -> Vec<String> {
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
    pub(super) fn environment(
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
    pub(super) fn ports(&self, name: &str) -> BTreeMap<u16, (String, u16)> {
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

    pub(super) fn condition(&self, service: &str, dependency: &str) -> Option<String> {
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
pub(super) fn interpolate(text: &str) -> Result<String, String> {
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
pub(super) fn on_host(value: &str, compose: &Compose, image_files: &[(String, PathBuf)]) -> String {
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
pub(super) fn listed_variables(help: &str) -> BTreeSet<String> {
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
        // `docker compose` without the plugin: docker's usage error, which
        // depends on its version ("unknown command", "is not a docker
        // command", or its own flags refusing compose's `-f`).
        if client == "docker"
            && (stderr.contains("unknown command")
                || stderr.contains("is not a docker command")
                || stderr.contains("unknown shorthand flag"))
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
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "neither docker-compose nor `docker compose` is installed and CI=true \
             (scripts/test installs Debian's docker-compose where it can)"
        );
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
