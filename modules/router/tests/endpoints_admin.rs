//! The admin endpoints over a real socket: mounting, authentication, reload, dry run, config,
//! history and rollback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{TOKEN, admin_yaml, json, start, start_with, text};

#[tokio::test]
async fn without_a_token_the_admin_endpoints_do_not_exist() -> anyhow::Result<()> {
    let test = start("").await?;
    let unknown = test.post("/admin/nothing-here").send().await?;
    for response in [
        test.post("/admin/reload").bearer_auth(TOKEN).send().await?,
        test.get("/admin/config").send().await?,
        test.post("/admin/config/rollback/1").send().await?,
    ] {
        assert_eq!(response.status(), unknown.status());
        assert_eq!(response.status(), 404);
        assert!(response.headers().get("www-authenticate").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn admin_requests_need_the_bearer_token() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let missing = test.get("/admin/config").send().await?;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"modular-admin\""
    );
    assert_eq!(missing.headers()["cache-control"], "no-store");
    let wrong = test
        .get("/admin/config")
        .bearer_auth("test-admin-token-0123456780")
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    let basic = test
        .get("/admin/config")
        .basic_auth("admin", Some(TOKEN))
        .send()
        .await?;
    assert_eq!(basic.status(), 401);
    let granted = test.get("/admin/config").bearer_auth(TOKEN).send().await?;
    assert_eq!(granted.status(), 200);
    assert_eq!(granted.headers()["cache-control"], "no-store");
    Ok(())
}

#[tokio::test]
async fn admin_reload_applies_a_config_change_and_answers_the_outcome() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));

    test.write_config(&format!("{}greeter:\n  greeting: bonjour\n", admin_yaml()))?;
    let (status, outcome) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "applied");
    assert_eq!(outcome["trigger"], "admin");
    assert_eq!(outcome["version"], 2);
    assert_eq!(outcome["reloaded"], serde_json::json!(["greeter"]));
    assert_eq!(outcome["changes"][0]["field_path"], "greeting");
    assert_eq!(text(test.get("/greet")).await?, (200, "bonjour".to_owned()));

    // Nothing changed since: a noop, still 200.
    let (status, outcome) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!((status, outcome["status"].as_str()), (200, Some("noop")));
    Ok(())
}

#[tokio::test]
async fn a_rejected_reload_answers_422_with_every_error_and_is_kept_as_last_rejected()
-> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.write_config(&format!(
        "{}router:\n  routes:\n    /greet:\n      disabled_status: 500\n",
        admin_yaml()
    ))?;
    let (status, outcome) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(outcome["status"], "rejected");
    assert_eq!(
        outcome["errors"][0]["path"],
        "router.routes./greet.disabled_status"
    );
    assert_eq!(
        outcome["errors"][0]["message"],
        "must be 404 or 503, got 500"
    );

    let (_, config) = json(test.get("/admin/config").bearer_auth(TOKEN)).await?;
    assert_eq!(config["version"], 1);
    assert_eq!(config["last_rejected"]["status"], "rejected");
    Ok(())
}

#[tokio::test]
async fn a_plan_reports_what_a_candidate_would_do_and_applies_nothing() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (status, plan) = json(
        test.post("/admin/reload/plan")
            .bearer_auth(TOKEN)
            .header("content-type", "application/yaml")
            .body("greeter:\n  greeting: hola\n"),
    )
    .await?;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["status"], "planned", "a plan never reads as applied");
    assert_eq!(plan["trigger"], "admin");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["plan"], serde_json::json!(["greeter"]));
    assert_eq!(plan["changes"][0]["new_value"], "hola");

    // Applied nothing: same greeting, same version, no history entry.
    assert_eq!(text(test.get("/greet")).await?.1, "hello");
    let (_, config) = json(test.get("/admin/config").bearer_auth(TOKEN)).await?;
    assert_eq!(config["version"], 1);
    let (_, history) = json(test.get("/admin/config/history").bearer_auth(TOKEN)).await?;
    assert_eq!(history["history"].as_array().map(Vec::len), Some(1));

    // A JSON candidate with an invalid value is rejected with its path, still applying nothing.
    let (status, plan) = json(
        test.post("/admin/reload/plan")
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"router": {"request_timeout": "soon"}}"#),
    )
    .await?;
    assert_eq!(status, 422, "{plan}");
    assert_eq!(plan["errors"][0]["path"], "router.request_timeout");
    Ok(())
}

#[tokio::test]
async fn rollback_returns_to_an_earlier_version_through_the_pipeline() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.write_config(&format!("{}greeter:\n  greeting: second\n", admin_yaml()))?;
    assert_eq!(
        json(test.post("/admin/reload").bearer_auth(TOKEN)).await?.1["version"],
        2
    );
    assert_eq!(text(test.get("/greet")).await?.1, "second");

    let (status, outcome) = json(test.post("/admin/config/rollback/1").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "applied");
    assert_eq!(outcome["trigger"], "rollback");
    assert_eq!(outcome["version"], 3);
    assert_eq!(text(test.get("/greet")).await?.1, "hello");

    let (status, history) = json(test.get("/admin/config/history").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200);
    let versions: Vec<u64> = history["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(history["history"][2]["trigger"], "rollback");

    let (status, missing) = json(test.post("/admin/config/rollback/99").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 404);
    assert!(
        missing["error"]
            .as_str()
            .unwrap_or("")
            .contains("version 99 is not in the history")
    );
    Ok(())
}

#[tokio::test]
async fn the_running_config_is_served_with_secrets_redacted() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (status, body) = json(test.get("/admin/config").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(body["config"]["admin"]["token"], "[REDACTED]");
    assert_eq!(body["config"]["greeter"]["greeting"], "hello");
    assert_eq!(body["config"]["httpserver"]["host"], "127.0.0.1");
    assert_eq!(body["pending_restart"], serde_json::json!([]));
    assert!(body["last_rejected"].is_null());
    assert!(!body.to_string().contains(TOKEN));
    Ok(())
}

#[tokio::test]
async fn a_token_added_by_reload_mounts_admin_and_a_rotated_one_replaces_it() -> anyhow::Result<()>
{
    let test = start("").await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let route_count = || async {
        let health = aggregator.force_refresh().await;
        health
            .report("router", "routes")
            .map(|r| r.details["route_count"].clone())
    };
    assert_eq!(
        test.get("/admin/config")
            .bearer_auth(TOKEN)
            .send()
            .await?
            .status(),
        404
    );
    assert_eq!(route_count().await, Some(14.into()));

    test.write_config(&admin_yaml())?;
    assert!(test.app.reload().await?.is_applied());
    assert_eq!(
        test.get("/admin/config")
            .bearer_auth(TOKEN)
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(route_count().await, Some(22.into()));

    let rotated = "rotated-admin-token-abcdefghij";
    test.write_config(&format!("admin:\n  token: {rotated}\n"))?;
    assert!(test.app.reload().await?.is_applied());
    assert_eq!(
        test.get("/admin/config")
            .bearer_auth(TOKEN)
            .send()
            .await?
            .status(),
        403
    );
    assert_eq!(
        test.get("/admin/config")
            .bearer_auth(rotated)
            .send()
            .await?
            .status(),
        200
    );
    Ok(())
}

/// A small seeded generator (xorshift64*), so the fuzz below is the same on every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A typo of `word`: two neighbours swapped, a letter dropped or doubled.
fn typo(rng: &mut Seeded, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = rng.below(chars.len() - 1);
    match rng.below(3) {
        0 if chars[i] != chars[i + 1] => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        _ => chars.insert(i, chars[i]),
    }
    let typo: String = chars.into_iter().collect();
    if typo == word {
        format!("{word}x")
    } else {
        typo
    }
}

/// YAML alias chains ("billion laughs"): `depth` levels, each a list of `width` aliases of
/// the level below.
fn alias_chain(depth: usize, width: usize) -> String {
    let mut yaml = String::from("greeter:\n  greeting: &l0 \"lol\"\n  x:\n");
    for level in 1..=depth {
        let refs = vec![format!("*l{}", level - 1); width].join(", ");
        yaml.push_str(&format!("    - &l{level} [{refs}]\n"));
    }
    yaml
}

/// Resident memory of this process, from /proc (Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The seeded fuzz of the dry-run endpoint from the audit: typos of section and field names,
/// lists, scalars and nulls where a section's map belongs, and alias chains. Each candidate is
/// refused with 422 and the path it went wrong at; the running config stays at version 1; and
/// the process's memory stays flat.
#[tokio::test]
async fn a_seeded_fuzz_of_the_plan_endpoint_is_refused_case_by_case_with_paths()
-> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let plan = |body: String, content_type: &'static str| {
        test.post("/admin/reload/plan")
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
    };
    // Warm up (first requests allocate pools and caches), then measure.
    let (status, _) = json(plan(
        "greeter:\n  greeting: hi\n".to_owned(),
        "application/yaml",
    ))
    .await?;
    assert_eq!(status, 200);
    let before = resident_bytes();
    let mut rng = Seeded(0x5eed_cafe_f00d_0001);
    let sections = ["router", "greeter", "httpserver", "admin", "health"];
    let fields = [
        ("router", "request_timeout", "5s"),
        ("greeter", "greeting", "hola"),
    ];
    for round in 0..120 {
        let (body, content_type, expected_path) = match round % 6 {
            0 => {
                let section = sections[rng.below(sections.len())];
                let wrong = typo(&mut rng, section);
                (format!("{wrong}:\n  a: 1\n"), "application/yaml", wrong)
            }
            1 => {
                let (section, field, value) = fields[rng.below(fields.len())];
                let wrong = typo(&mut rng, field);
                (
                    format!("{section}:\n  {wrong}: {value}\n"),
                    "application/yaml",
                    format!("{section}.{wrong}"),
                )
            }
            2 => {
                let section = sections[rng.below(sections.len())];
                let value = ["[]", "3", "~", "\"text\"", "[1, 2]"][rng.below(5)];
                (
                    format!("{section}: {value}\n"),
                    "application/yaml",
                    section.to_owned(),
                )
            }
            3 => {
                let section = sections[rng.below(sections.len())];
                let value = ["[]", "3", "null", "true"][rng.below(4)];
                (
                    format!("{{\"{section}\": {value}}}"),
                    "application/json",
                    section.to_owned(),
                )
            }
            4 => (
                alias_chain(6 + rng.below(4), 8 + rng.below(4)),
                "application/yaml",
                "alias".to_owned(),
            ),
            _ => (
                r#"{"greeter": {"greeting": "a", "greeting": "b"}}"#.to_owned(),
                "application/json",
                "greeting".to_owned(),
            ),
        };
        let (status, outcome) = json(plan(body.clone(), content_type)).await?;
        assert_eq!(status, 422, "round {round}, {body}: {outcome}");
        assert_eq!(
            outcome["status"], "rejected",
            "round {round}, {body}: {outcome}"
        );
        let said = outcome.to_string();
        assert!(
            said.contains(&expected_path),
            "round {round}: {body} was refused without naming {expected_path:?}: {outcome}"
        );
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "memory grew by {} MB over the fuzz",
        grown / (1024 * 1024)
    );
    let (_, config) = json(test.get("/admin/config").bearer_auth(TOKEN)).await?;
    assert_eq!(
        config["version"], 1,
        "a refused plan changed the running config"
    );
    Ok(())
}

/// A module's admin endpoint, contributed through `RouteRegistry::admin_route`.
#[derive(Debug)]
struct Widgets;

#[modular_core::async_trait]
impl modular_core::Module for Widgets {
    fn name(&self) -> &str {
        "widgets"
    }

    async fn init(
        &mut self,
        ctx: &mut modular_core::InitContext<'_>,
    ) -> Result<(), modular_core::BoxError> {
        modular_core::http::RouteRegistry::shared(ctx.services()).admin_route(
            "widgets",
            "/admin/widgets",
            axum::routing::get(|| async { "three widgets" }),
        );
        Ok(())
    }
}

#[tokio::test]
async fn a_contributed_admin_endpoint_sits_behind_the_admin_guard() -> anyhow::Result<()> {
    let test = start_with(&admin_yaml(), |b| b.module(Widgets)).await?;
    let missing = test.get("/admin/widgets").send().await?;
    assert_eq!(missing.status(), 401);
    let wrong = test
        .get("/admin/widgets")
        .bearer_auth("test-admin-token-0123456780")
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    let (status, body) = text(test.get("/admin/widgets").bearer_auth(TOKEN)).await?;
    assert_eq!((status, body.as_str()), (200, "three widgets"));

    // Without admin access at all, it does not exist.
    let closed = start_with("", |b| b.module(Widgets)).await?;
    let response = closed
        .get("/admin/widgets")
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    Ok(())
}
