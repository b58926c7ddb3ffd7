//! The page in a real browser: headless Chromium through chromedriver (Debian's `chromium`
//! and `chromium-driver`), driven with fantoccini. Without them each test prints one skip
//! line, unless `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use fantoccini::Locator;
use serde_json::{Value, json};
use support::{Browser, ConsoleApp, SESSION_COOKIE, config_yaml, start, start_with_cookie_role};

/// Every one of `names` has its row on the current page of the checks table.
const EVERY_CHECK_SHOWN: &str = "const names = arguments[0];
    return names.every(n => document.querySelector(`#checks tbody tr[data-check=\"${n}\"]`) !== null);";

async fn wait_for_version(browser: &Browser, version: u64) -> anyhow::Result<()> {
    browser
        .client
        .execute(
            "window.__wantVersion = arguments[0]; return true;",
            vec![json!(version.to_string())],
        )
        .await?;
    browser
        .wait_until(
            &format!("config version {version} on the page"),
            "return document.getElementById('config-version').textContent === window.__wantVersion",
        )
        .await
}

async fn click(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser
        .client
        .find(Locator::Css(css))
        .await?
        .click()
        .await?;
    Ok(())
}

/// The history table's first row: `[version, trigger, outcome, changes text]`.
async fn top_history_row(browser: &Browser) -> anyhow::Result<Value> {
    browser
        .eval(
            "const row = document.querySelector('#history tbody tr');
             if (!row) return null;
             const cells = row.querySelectorAll('td');
             return [cells[0].textContent, cells[2].textContent, cells[3].textContent, cells[4].textContent];",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_every_check_follows_reloads_plans_and_rolls_back() -> anyhow::Result<()>
{
    let Some(browser) = Browser::start("console_browser").await? else {
        return Ok(());
    };
    // 20 checks of our own (plus the router's, the server's and the runtime's) and 20
    // versions: the initial one and 19 committed overrides.
    let app = start(20, 20).await?;
    app.add_versions(19).await?;
    assert_eq!(app.orchestrator().version(), 20);
    let names = app.check_names().await?;

    browser.login(&app).await?;
    // The token is in this tab's sessionStorage, never in the URL.
    let location = browser
        .eval("return [location.search, location.hash, sessionStorage.length]")
        .await?;
    assert_eq!(location, json!(["", "", 1]));

    // Every check, with its status and message.
    wait_checks(&browser, &names).await?;
    let degraded = browser
        .eval(
            "const row = document.querySelector('#checks tbody tr[data-check=\"checks:c000\"]');
             return [row.querySelector('.badge').textContent, row.querySelector('.message').textContent];",
        )
        .await?;
    assert_eq!(degraded, json!(["degraded", "check number 0"]));
    wait_for_version(&browser, 20).await?;
    assert_eq!(browser.text("status-startup").await?, "healthy");
    assert_eq!(browser.text("history-count").await?, "(20 kept)");

    // Load time of a page with a token already in the tab: navigation to the first full
    // render, as the page measures it and as seen from here. Printed, not asserted.
    let started = Instant::now();
    browser.client.goto(&app.url("/admin/ui")).await?;
    wait_checks(&browser, &names).await?;
    wait_for_version(&browser, 20).await?;
    let seen = started.elapsed();
    let first_render = browser.eval("return window.consoleLoadMs").await?;
    println!(
        "console page load with {} checks and 20 history entries: first render at {:.0} ms after navigation (page's own measure), all checks and the version visible {} ms after goto",
        names.len(),
        first_render.as_f64().unwrap_or(f64::NAN),
        seen.as_millis()
    );

    // A file edit reloads (the watcher is core's) and the page follows without a refresh.
    std::fs::write(&app.config, config_yaml("second", ""))?;
    wait_for_version(&browser, 21).await?;
    let top = top_history_row(&browser).await?;
    assert_eq!(top[0], "21");
    assert_eq!(top[1], "file");
    assert!(top[2].as_str().unwrap_or("").contains("applied"), "{top}");
    let changes = browser
        .eval("return document.querySelector('#history tbody tr details').textContent")
        .await?;
    assert!(
        changes
            .as_str()
            .is_some_and(|c| c.contains("knob.label") && c.contains("\"first\" → \"second\"")),
        "{changes}"
    );

    // A bad candidate in the plan box: rejected, with its key path; nothing applied. (Not a
    // `knob.value`: the overrides set above sit over any candidate.)
    let input = browser.client.find(Locator::Id("plan-input")).await?;
    input.send_keys("console:\n  page_size: many\n").await?;
    click(&browser, "#plan-run").await?;
    browser
        .wait_until(
            "the rejection in the plan box",
            "const path = document.querySelector('#plan-result .plan-error .path');
             return path !== null && path.textContent === 'console.page_size'
                 && document.querySelector('#plan-result .badge').textContent === 'rejected';",
        )
        .await?;
    let message = browser
        .eval("return document.querySelector('#plan-result .plan-error').textContent")
        .await?;
    assert!(
        message.as_str().is_some_and(|m| m.contains("many")),
        "{message}"
    );
    assert_eq!(app.orchestrator().version(), 21);

    // Rollback asks first: dismissed, nothing happens; accepted, version 20's config returns
    // as version 22.
    click(&browser, "button.rollback[data-version=\"20\"]").await?;
    let question = browser.answer_confirm(false).await?;
    assert!(question.contains("version 20"), "{question}");
    assert_eq!(app.orchestrator().version(), 21);
    click(&browser, "button.rollback[data-version=\"20\"]").await?;
    browser.answer_confirm(true).await?;
    browser
        .wait_until(
            "the rollback's outcome",
            "const box = document.getElementById('action-result');
             return !box.hidden && box.textContent.includes('Rollback to version 20')
                 && box.textContent.includes('applied');",
        )
        .await?;
    wait_for_version(&browser, 22).await?;
    let top = top_history_row(&browser).await?;
    assert_eq!(top[1], "rollback", "{top}");

    // From the top, with the file reload's diff open, for docs/img/console.png.
    browser
        .eval(
            "document.querySelector('#history tbody tr[data-version=\"21\"] details').open = true;
             window.scrollTo(0, 0); return true;",
        )
        .await?;
    let shot = browser.screenshot("console").await?;
    println!("screenshot: {}", shot.display());

    // Logging out forgets the token.
    click(&browser, "#logout").await?;
    browser
        .wait_until(
            "the login form after logout",
            "return document.body.dataset.state === 'login' && sessionStorage.length === 0",
        )
        .await?;

    browser.close().await?;
    app.stop().await
}

async fn wait_checks(browser: &Browser, names: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let shown = browser
            .client
            .execute(EVERY_CHECK_SHOWN, vec![json!(names)])
            .await?;
        if shown == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("not every check of {names:?} is on the page");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The rows of the current page of `table` (`checks` or `history`), by their key.
async fn page_rows(browser: &Browser, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = browser
        .client
        .execute(
            "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]
                 .map(r => r.dataset.check || r.dataset.version);",
            vec![json!(table)],
        )
        .await?;
    Ok(serde_json::from_value(rows)?)
}

/// Waits for `table`'s pager to read `range`.
async fn wait_range(browser: &Browser, table: &str, range: &str) -> anyhow::Result<()> {
    browser
        .client
        .execute(
            "window.__wantRange = arguments[0]; return true;",
            vec![json!(range)],
        )
        .await?;
    browser
        .wait_until(
            &format!("{table} pager reading {range:?}"),
            &format!(
                "return document.getElementById('{table}-range').textContent === window.__wantRange"
            ),
        )
        .await
}

/// Walks every page of `table`, returning every row key in page order.
async fn walk_pages(
    browser: &Browser,
    table: &str,
    total: usize,
    page_size: usize,
) -> anyhow::Result<Vec<String>> {
    let pages = total.div_ceil(page_size);
    let mut seen = Vec::new();
    for page in 0..pages {
        let start = page * page_size;
        let end = total.min(start + page_size);
        wait_range(
            browser,
            table,
            &format!(
                "{}–{end} of {total} (page {} of {pages})",
                start + 1,
                page + 1
            ),
        )
        .await?;
        let rows = page_rows(browser, table).await?;
        assert_eq!(rows.len(), end - start, "{table} page {}", page + 1);
        let disabled = browser
            .client
            .execute(
                "return [document.getElementById(arguments[0] + '-prev').disabled,
                         document.getElementById(arguments[0] + '-next').disabled];",
                vec![json!(table)],
            )
            .await?;
        assert_eq!(disabled, json!([page == 0, page + 1 == pages]));
        seen.extend(rows);
        if page + 1 < pages {
            click(browser, &format!("#{table}-next")).await?;
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_checks_and_two_hundred_versions_render_page_by_page() -> anyhow::Result<()> {
    let Some(browser) = Browser::start("console_browser (200)").await? else {
        return Ok(());
    };
    let app: ConsoleApp = start(200, 200).await?;
    app.add_versions(199).await?;
    assert_eq!(app.orchestrator().history().len(), 200);
    let names = app.check_names().await?;
    assert!(names.len() >= 200);

    browser.login(&app).await?;
    let checks = walk_pages(&browser, "checks", names.len(), 50).await?;
    assert_eq!(checks, names, "every check once, in the server's order");

    let versions = walk_pages(&browser, "history", 200, 50).await?;
    let expected: Vec<String> = (1..=200).rev().map(|v| v.to_string()).collect();
    assert_eq!(versions, expected, "newest first, every version once");
    // The running version has no rollback button; every other one does.
    let buttons: BTreeSet<String> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('#history button.rollback')].map(b => b.dataset.version)")
            .await?,
    )?;
    assert_eq!(buttons.len(), 50, "the last page holds versions 50 to 1");

    browser.close().await?;
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_role_from_a_session_cookie_needs_no_login_form() -> anyhow::Result<()> {
    let Some(browser) = Browser::start("console_browser (cookie role)").await? else {
        return Ok(());
    };
    let app = start_with_cookie_role(3).await?;
    // A cookie belongs to an origin: visit it first, as a login page of the auth module would.
    browser
        .client
        .goto(&app.url("/admin/ui/console.css"))
        .await?;
    browser
        .client
        .execute(
            "document.cookie = `${arguments[0]}=${arguments[1]}; path=/; SameSite=Strict`; return true;",
            vec![json!(SESSION_COOKIE.0), json!(SESSION_COOKIE.1)],
        )
        .await?;
    browser.client.goto(&app.url("/admin/ui")).await?;
    browser
        .wait_until(
            "the dashboard, with no login form",
            "return document.body.dataset.state === 'live'
                 && document.querySelector('#checks tbody tr[data-check=\"checks:c002\"]') !== null",
        )
        .await?;
    // Messages need the health-details right, which the role grants too; no token is kept,
    // so there is none to log out of.
    let seen = browser
        .eval(
            "return [document.querySelector('#checks tbody tr[data-check=\"checks:c002\"] .message').textContent,
                     document.getElementById('logout').hidden, sessionStorage.length]",
        )
        .await?;
    assert_eq!(seen, json!(["check number 2", true, 0]));
    browser.close().await?;
    app.stop().await
}

/// The harness itself: when the page is not there, the first wait fails (rather than
/// passing on an empty page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_is_not_served_fails_the_harness_s_first_wait() -> anyhow::Result<()> {
    let Some(browser) = Browser::start("console_browser (harness)").await? else {
        return Ok(());
    };
    let app = support::start_with(1, 20, &config_yaml("first", "  enabled: false\n")).await?;
    browser.client.goto(&app.url("/admin/ui")).await?;
    let waited = browser
        .wait_until_within(
            "the login form",
            "return document.body.dataset.state === 'login'",
            std::time::Duration::from_secs(1),
        )
        .await;
    let error = waited.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.starts_with("timed out after 1s waiting for the login form"),
        "{error}"
    );
    browser.close().await?;
    app.stop().await
}
