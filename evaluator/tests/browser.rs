//! The pages in a real headless Chromium: the app on a loopback port with
//! in-process workers on a fresh database, driven through ChromeDriver.
//!
//! Sign in, upload a module through the form, start a comparison from the
//! dataset page, watch its progress until htmx reloads the win-rate page, then
//! the heatmap, the Pareto page (clicking a point opens the compare view) and
//! the side-by-side view, at 1280 px and at a phone's 390 px. The browser's
//! log must hold no error (failed loads and script errors are `SEVERE`
//! entries). Screenshots go to `target/browser-artifacts/`.
//!
//! Needs `chromium` and `chromedriver` (`scripts/setup` installs Debian's);
//! without them the test prints `SKIPPED` and passes.
//!
//! Why a small WebDriver client over `ureq` rather than `fantoccini` or
//! `chromiumoxide`: the test needs ten W3C WebDriver endpoints (session, url,
//! element, value, click, execute, rect, screenshot, log, delete), each one
//! JSON request; `ureq` is already a dependency, whereas fantoccini brings
//! hyper, its TLS stack and the `webdriver` crate, and chromiumoxide a
//! generated CDP binding that takes minutes to compile. ChromeDriver is
//! Chromium's own, so the protocol is the stable, documented one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine;
use common::{TestDb, legacy_compare_job, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use evaluator::startup::app;
use evaluator::state::AppState;
use reward_builtins::builtin;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// ChromeDriver as a child process, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = ureq::get(&format!("{}/status", driver.base)).call()
                && r.body_mut()
                    .read_to_string()
                    .ok()
                    .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                    .is_some_and(|v| v["value"]["ready"] == true)
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One browser session.
struct Browser {
    base: String,
}

fn send(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, body) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.unwrap_or(json!({})).to_string()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let value: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert!(status.is_success(), "{method} {url}: {status} {value}");
    value["value"].clone()
}

impl Browser {
    fn open(driver: &Driver) -> Browser {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--force-device-scale-factor=1"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = send(
            "POST",
            &format!("{}/session", driver.base),
            Some(capabilities),
        );
        Browser {
            base: format!(
                "{}/session/{}",
                driver.base,
                session["sessionId"].as_str().unwrap()
            ),
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        send("POST", &format!("{}{path}", self.base), Some(body))
    }

    fn go(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        send("GET", &format!("{}/url", self.base), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let found = self.post("/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT].as_str().unwrap().to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/value"), json!({ "text": text }));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Waits until `script` returns true (it is evaluated as a function body).
    fn wait_for(&self, script: &str, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.script(script) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Signs in through the form and waits for the overview.
    fn sign_in(&self, site: &str, token: &str) {
        self.go(&format!("{site}/login"));
        self.type_into("#token", token);
        self.click("form button[type=submit]");
        self.wait_for(
            "return location.pathname === '/';",
            "the overview",
            Duration::from_secs(10),
        );
    }

    fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}));
    }

    /// A PNG of the whole page (the window grown to the document's height).
    fn screenshot(&self, dir: &Path, name: &str, width: u32) {
        let height = self
            .script("return Math.max(document.documentElement.scrollHeight, 600);")
            .as_u64()
            .unwrap()
            .min(6000) as u32;
        self.resize(width, height);
        let data = send("GET", &format!("{}/screenshot", self.base), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
        self.resize(width, 900);
    }

    /// The browser log's entries at level SEVERE (console errors, uncaught
    /// exceptions, failed loads) since the last call.
    fn errors(&self) -> Vec<String> {
        let entries = self.post("/se/log", json!({"type": "browser"}));
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].to_string())
            .collect()
    }

    fn close(self) {
        send("DELETE", &self.base, None);
    }
}

/// The app on a loopback port: its address and the task serving it.
async fn serve(db: &TestDb) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    let router = app(AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    });
    (
        site,
        tokio::spawn(async move { axum::serve(listener, router).await }),
    )
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `river` dataset's pages, by name, as the phone checks visit them.
const RIVER_PAGES: [(&str, &str); 5] = [
    ("overview", "/"),
    ("results", "/datasets/river"),
    ("winrates", "/datasets/river/winrates"),
    (
        "pareto",
        "/datasets/river/pareto?x=accuracy/accuracy&y=length/words",
    ),
    ("compare", "/datasets/river/compare?a=tuned&b=base"),
];

/// Four systems on eight items, three of them an interpolation sweep.
async fn dataset(db: &TestDb, token: &str) {
    let labels = ["yes", "no", "yes", "no", "yes", "yes", "no", "no"];
    for (system, right, words, lambda) in [
        ("base", 3, 4, Some(0.0)),
        ("mix-0.5", 5, 9, Some(0.5)),
        ("tuned", 7, 16, Some(1.0)),
        ("baseline", 2, 20, None),
    ] {
        let lines: Vec<String> = labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let answer = if i < right {
                    *label
                } else if *label == "yes" {
                    "no"
                } else {
                    "yes"
                };
                json!({
                    "id": format!("q{i}"),
                    "prompt": format!("Question {i}: is the river <i>wide</i> & deep?"),
                    "reference": label,
                    "response": format!("{} So the answer is {answer}.", "Because the water runs fast.".repeat(words / 2 + 1)),
                })
                .to_string()
            })
            .collect();
        let name = system;
        let (status, summary) =
            push(db, token, "river", name, "canonical", &lines.join("\n")).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
        if let Some(lambda) = lambda {
            let request = axum::http::Request::put(format!("/api/v1/systems/{name}/metadata"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({ "lambda": lambda }).to_string(),
                ))
                .unwrap();
            let (status, _) = common::send(db, request).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_signs_in_uploads_compares_and_reads_every_chart() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing (scripts/setup installs them)");
        return;
    }
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "reviewers").await.unwrap();
    dataset(&db, &token).await;
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    upload(&db, &token, builtin("length").unwrap().wasm).await;
    let workers = start_workers(&db, 2);
    let (_, score) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        json!({"dataset": "river", "modules": ["accuracy", "length"]}),
    )
    .await;
    let score = wait_for_job(&db, &token, score["id"].as_i64().unwrap()).await;
    assert_eq!(score["state"], "succeeded", "{score}");
    // No workers while the browser starts the comparison, so that its page
    // shows the job queued and polling; they start when the browser says so.
    workers.stop().await;
    let (queued_seen, queued) = tokio::sync::oneshot::channel::<()>();

    let (site, server) = serve(&db).await;
    let wasm = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(wasm.path(), builtin("label-judge").unwrap().wasm).unwrap();
    let wasm_path = wasm.path().to_str().unwrap().to_string();
    let dir = artifacts();

    // WebDriver calls block: on a blocking thread, with the server and the
    // workers running on the runtime's others.
    let token_for_browser = token.clone();
    let browsing = tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        let browser = Browser::open(&driver);
        browser.resize(1280, 900);
        // The log really collects errors: a probe shows up, then is drained.
        browser.go(&format!("{site}/login"));
        browser.script("console.error('probe');");
        let probe = browser.errors();
        assert!(probe.iter().any(|e| e.contains("probe")), "{probe:?}");

        // Not signed in: every page leads to the form.
        browser.go(&format!("{site}/datasets/river"));
        assert!(browser.url().ends_with("/login"), "{}", browser.url());
        browser.screenshot(&dir, "login", 1280);
        browser.type_into("#token", &token_for_browser);
        browser.click("form button[type=submit]");
        browser.wait_for(
            "return location.pathname === '/';",
            "the overview",
            Duration::from_secs(10),
        );
        assert_eq!(
            browser.script("return document.querySelector('h1').textContent;"),
            "reviewers"
        );
        assert_eq!(
            browser.script("return document.cookie;"),
            "",
            "the session cookie is HttpOnly"
        );

        // A file dropped on the drop zone becomes the form's file; one the
        // sandbox refuses is reported beside the form.
        browser.go(&format!("{site}/modules"));
        browser.script(
            "const dt = new DataTransfer(); \
             dt.items.add(new File([new Uint8Array([0, 97, 115, 109, 9, 9])], 'broken.wasm')); \
             document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
        );
        assert_eq!(
            browser.script("return document.querySelector('#chosen').textContent;"),
            "broken.wasm"
        );
        browser.click("#upload-form button[type=submit]");
        browser.wait_for(
            "return !!document.querySelector('#upload-error');",
            "the refusal",
            Duration::from_secs(30),
        );
        browser.screenshot(&dir, "modules-refused", 1280);
        // The refusal answers 422, which the browser logs as a failed load.
        let refused = browser.errors();
        assert!(refused.iter().all(|e| e.contains("422")), "{refused:?}");
        // A module through the upload form.
        browser.go(&format!("{site}/modules"));
        browser.type_into("#module-file", &wasm_path);
        browser.click("#upload-form button[type=submit]");
        browser.wait_for(
            "return !!document.querySelector('#upload-notice');",
            "the upload notice",
            Duration::from_secs(30),
        );
        let notice = browser.script("return document.querySelector('#upload-notice').textContent;");
        assert!(notice.as_str().unwrap().contains("label-judge"), "{notice}");
        browser.screenshot(&dir, "modules", 1280);

        // A comparison from the dataset page; its progress polls until done,
        // then the win-rate page reloads itself.
        browser.go(&format!("{site}/datasets/river"));
        assert_eq!(
            browser.script("return document.querySelectorAll('#results tbody tr').length;"),
            4
        );
        browser.screenshot(&dir, "results", 1280);
        browser.script(
            "const s = document.querySelector('#judge'); \
             s.value = [...s.options].find(o => o.textContent.startsWith('label-judge')).value;",
        );
        browser.click("#compare-form button[type=submit]");
        browser.wait_for(
            "return location.pathname.endsWith('/winrates');",
            "the win-rate page",
            Duration::from_secs(10),
        );
        assert_eq!(
            browser.script("return document.querySelector('#jobs[hx-get] tr.job').dataset.state;"),
            "queued",
            "the queued job's progress polls"
        );
        browser.screenshot(&dir, "progress", 1280);
        queued_seen.send(()).unwrap();
        browser.wait_for(
            "return !!document.querySelector('#leaderboard');",
            "the finished comparison",
            Duration::from_secs(90),
        );
        assert_eq!(
            browser.script(
                "return document.querySelectorAll('svg.heatmap g.cell[data-value]').length;"
            ),
            12
        );
        let hover = browser.script(
            "return document.querySelector('svg.heatmap g.cell[data-value] title').textContent;",
        );
        assert!(hover.as_str().unwrap().contains("95% CI"), "{hover}");
        browser.screenshot(&dir, "winrates", 1280);

        // The Pareto page; a point opens the compare view.
        browser.go(&format!(
            "{site}/datasets/river/pareto?x=accuracy/accuracy&y=length/words"
        ));
        let front =
            browser.script("return document.querySelectorAll('svg.scatter .point.front').length;");
        assert!(front.as_u64().unwrap() >= 1, "{front}");
        assert_eq!(
            browser.script("return !!document.querySelector('svg.scatter .sweep-line');"),
            true
        );
        browser.screenshot(&dir, "pareto", 1280);
        browser.click("svg.scatter a.point.front");
        browser.wait_for(
            "return location.pathname.endsWith('/compare');",
            "the compare view",
            Duration::from_secs(10),
        );
        assert!(browser.url().contains("a="), "{}", browser.url());

        // Side by side: label judge verdicts, then a filter.
        browser.go(&format!("{site}/datasets/river/compare?a=tuned&b=base"));
        assert_eq!(
            browser.script("return document.querySelectorAll('article.item').length;"),
            8
        );
        // User text is shown as text, never as markup.
        assert_eq!(
            browser.script("return document.querySelectorAll('article.item h2 i').length;"),
            0
        );
        browser.screenshot(&dir, "compare", 1280);
        browser.go(&format!(
            "{site}/datasets/river/compare?a=tuned&b=base&filter=a"
        ));
        let wins = browser
            .script("return document.querySelectorAll('article.item').length;")
            .as_u64()
            .unwrap();
        assert!((1..8).contains(&wins), "{wins}");

        browser.go(&format!("{site}/"));
        browser.screenshot(&dir, "overview", 1280);

        // A phone's width: nothing wider than the screen but the scrollable tables.
        browser.resize(390, 844);
        for (name, path) in RIVER_PAGES {
            browser.go(&format!("{site}{path}"));
            let overflow =
                browser.script("return document.documentElement.scrollWidth - window.innerWidth;");
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{name} overflows by {overflow} px at 390 px"
            );
            browser.screenshot(&dir, name, 390);
        }
        let errors = browser.errors();
        assert!(errors.is_empty(), "browser errors: {errors:#?}");

        // Signing out ends the session: pages lead to the form again.
        browser.click(".signout button");
        browser.wait_for(
            "return location.pathname === '/login';",
            "the sign-in form",
            Duration::from_secs(10),
        );
        browser.go(&format!("{site}/datasets/river"));
        assert!(browser.url().ends_with("/login"), "{}", browser.url());
        browser.close();
    });
    if queued.await.is_err() {
        // The browser side failed first: its panic is the message to show.
        match browsing.await {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            other => panic!("the browser stopped early: {other:?}"),
        }
    }
    let workers = start_workers(&db, 2);
    browsing.await.unwrap();
    server.abort();
    workers.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_mario_systems_in_the_browser_match_an_independent_computation() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mario/strategyqa");
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing (scripts/setup installs them)");
        return;
    }
    if !data.is_dir() {
        println!("SKIPPED: {} is absent (MaRio's data)", data.display());
        return;
    }
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "mario").await.unwrap();
    let files = [
        ("gpt3", "gpt3/test_gpt3_responses.jsonl"),
        ("flant5-large", "flant5/test_flant5large_responses.jsonl"),
        ("flant5-xl", "flant5/test_flant5xl_responses.jsonl"),
        ("flant5-xxl", "flant5/test_flant5xxl_responses.jsonl"),
        ("llama-7b", "llama/llama-7b_strategyqa_test_output.jsonl"),
        ("llama-65b", "llama/llama-65b_strategyqa_test_output.jsonl"),
    ];
    // The independent computation: native metric functions on the files.
    let mut accuracy: Vec<(&str, std::collections::HashMap<String, f64>)> = Vec::new();
    let mut words: Vec<(&str, f64)> = Vec::new();
    for (system, file) in files {
        let body = std::fs::read_to_string(data.join(file)).unwrap();
        let (status, summary) = push(&db, &token, "strategyqa", system, "mario", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
        let rows = common::mario_answers(&data.join(file));
        let n = rows.len() as f64;
        words.push((
            system,
            rows.values()
                .map(|(r, _)| r.split_whitespace().count() as f64)
                .sum::<f64>()
                / n,
        ));
        accuracy.push((
            system,
            rows.into_iter()
                .map(|(q, (r, gold))| {
                    let value = reward_metrics::accuracy::accuracy(&r, &gold);
                    (q, value)
                })
                .collect(),
        ));
    }
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    upload(&db, &token, builtin("length").unwrap().wasm).await;
    let workers = start_workers(&db, 2);
    for (path, body) in [
        (
            "/api/v1/jobs/score",
            json!({"dataset": "strategyqa", "modules": ["accuracy", "length"]}),
        ),
        (
            "/api/v1/jobs/compare",
            json!({"dataset": "strategyqa", "judge": "accuracy"}),
        ),
    ] {
        let (_, job) = post_json(&db, path, &token, body).await;
        let job = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    workers.stop().await;

    // Expected heatmap: the row system's win rate (ties half) against the column's.
    let mut expected_rates = std::collections::HashMap::new();
    for (a, sa) in &accuracy {
        for (b, sb) in &accuracy {
            if a == b {
                continue;
            }
            let total: f64 = sa
                .iter()
                .map(|(q, x)| match x.partial_cmp(&sb[q]).unwrap() {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                })
                .sum();
            expected_rates.insert(format!("{a}|{b}"), total / sa.len() as f64);
        }
    }
    // Expected front: higher accuracy, fewer words; a system is on it unless
    // another is at least as good on both and better on one.
    let means: Vec<(&str, f64, f64)> = accuracy
        .iter()
        .zip(&words)
        .map(|((s, acc), (_, w))| (*s, acc.values().sum::<f64>() / acc.len() as f64, *w))
        .collect();
    let mut expected_front: Vec<&str> = means
        .iter()
        .filter(|(_, acc, w)| {
            !means
                .iter()
                .any(|(_, a2, w2)| a2 >= acc && w2 <= w && (a2 > acc || w2 < w))
        })
        .map(|(s, _, _)| *s)
        .collect();
    expected_front.sort_unstable();

    let (site, server) = serve(&db).await;
    let dir = artifacts();
    tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        let browser = Browser::open(&driver);
        browser.resize(1280, 900);
        browser.sign_in(&site, &token);

        browser.go(&format!("{site}/datasets/strategyqa/winrates"));
        let cells = browser.script(
            "return [...document.querySelectorAll('g.cell')] \
             .filter(c => c.dataset.row !== c.dataset.col) \
             .map(c => [c.dataset.row, c.dataset.col, Number(c.dataset.value)]);",
        );
        let cells = cells.as_array().unwrap();
        assert_eq!(cells.len(), 30, "6 × 5 off-diagonal cells");
        for cell in cells {
            let key = format!("{}|{}", cell[0].as_str().unwrap(), cell[1].as_str().unwrap());
            let shown = cell[2].as_f64().unwrap();
            assert!(
                (shown - expected_rates[&key]).abs() < 1e-12,
                "{key}: page {shown}, computed {}",
                expected_rates[&key]
            );
        }
        let leaderboard_rows = browser
            .script("return document.querySelectorAll('#leaderboard tbody tr').length;");
        assert_eq!(leaderboard_rows, 6, "the leaderboard lists the six systems");
        browser.screenshot(&dir, "mario-winrates", 1280);

        browser.go(&format!(
            "{site}/datasets/strategyqa/pareto?x=accuracy/accuracy&y=length/words"
        ));
        let front = browser.script(
            "return [...document.querySelectorAll('a.point.front')].map(p => p.dataset.system).sort();",
        );
        assert_eq!(front, json!(expected_front), "the Pareto front");
        let points = browser.script("return document.querySelectorAll('a.point').length;");
        assert_eq!(points, 6);
        browser.screenshot(&dir, "mario-pareto", 1280);

        browser.go(&format!(
            "{site}/datasets/strategyqa/compare?a=gpt3&b=llama-65b"
        ));
        let shown = browser
            .script("return document.querySelectorAll('article.item').length;")
            .as_u64()
            .unwrap();
        assert_eq!(shown, 25, "the first page of 458 items (25 a page)");
        browser.screenshot(&dir, "mario-compare", 1280);
        let errors = browser.errors();
        assert!(errors.is_empty(), "browser errors: {errors:#?}");
        browser.close();
    })
    .await
    .unwrap();
    server.abort();
    db.finish().await;
}

/// A comparison stored before comparisons without common items were refused:
/// `a`, `b` on one half of the items and `c`, `d` on the other, each pair
/// overlapping only partly. The page must say that the leaderboard is not one
/// scale and that the pairs cover part of the items, readably at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnected_partly_overlapping_comparison_is_flagged_on_the_page() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing (scripts/setup installs them)");
        return;
    }
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "reviewers").await.unwrap();
    for (system, items, right) in [
        ("model-a", 0..4, 4),
        ("model-b", 0..3, 1),
        ("model-c", 4..8, 3),
        ("model-d", 4..7, 2),
    ] {
        let lines: Vec<String> = items
            .enumerate()
            .map(|(k, i)| {
                let answer = if k < right { "yes" } else { "no" };
                json!({"prompt": format!("Question {i}?"), "reference": "yes",
                       "response": format!("So the answer is {answer}.")})
                .to_string()
            })
            .collect();
        let (status, summary) = push(
            &db,
            &token,
            "halves",
            system,
            "canonical",
            &lines.join("\n"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
    }
    let judge = upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let job = legacy_compare_job(
        &db,
        "halves",
        judge,
        &[("model-a", "model-b"), ("model-c", "model-d")],
    )
    .await;
    let workers = start_workers(&db, 2);
    assert_eq!(wait_for_job(&db, &token, job).await["state"], "succeeded");
    workers.stop().await;

    let (site, server) = serve(&db).await;
    let dir = artifacts();
    tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        let browser = Browser::open(&driver);
        browser.resize(1280, 900);
        browser.sign_in(&site, &token);
        for width in [1280, 390] {
            browser.resize(width, if width == 390 { 844 } else { 900 });
            browser.go(&format!("{site}/datasets/halves/winrates?job={job}"));
            let warning =
                browser.script("return document.querySelector('#leaderboard-warning').innerText;");
            assert!(
                warning.as_str().unwrap().starts_with("Not one scale: the comparison graph is disconnected: 2 groups"),
                "{warning}"
            );
            let groups = browser.script(
                "return [...document.querySelectorAll('#leaderboard tbody tr')].map(r => r.dataset.group);",
            );
            assert_eq!(groups, json!(["1", "1", "2", "2"]));
            let note = browser.script("return document.querySelector('#overlap-note').innerText;");
            assert!(note.as_str().unwrap().starts_with("2 of 2 pairs"), "{note}");
            let items = browser.script(
                "return [...document.querySelectorAll('#pairs tbody tr')].map(r => r.cells[2].innerText);",
            );
            assert_eq!(
                items,
                json!(["3 of 4 / 3 answered", "3 of 4 / 3 answered"])
            );
            let overflow =
                browser.script("return document.documentElement.scrollWidth - window.innerWidth;");
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "overflows by {overflow} px at {width} px"
            );
            browser.screenshot(&dir, "winrates-disconnected", width);
        }
        let errors = browser.errors();
        assert!(errors.is_empty(), "browser errors: {errors:#?}");
        browser.close();
    })
    .await
    .unwrap();
    server.abort();
    db.finish().await;
}

/// Rendered text smaller than 11 px, as `tag "text" size`: HTML elements by
/// their computed font size, SVG text by its font size times the length its
/// x axis has on screen (the SVG's scale, rotated labels included). Hidden elements and `<title>` (never drawn) are left out.
const SMALL_TEXT: &str = "
    const small = [];
    for (const el of document.querySelectorAll('body *')) {
        if (el.closest('title, script, style, select, option')) continue;
        const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
        if (!own || el.getClientRects().length === 0) continue;
        let size = parseFloat(getComputedStyle(el).fontSize);
        // The scale of the text's own x axis on screen (rotation included).
        if (el instanceof SVGElement) { const m = el.getScreenCTM(); size *= Math.hypot(m.a, m.b); }
        if (size < 11) small.push(`${el.tagName} \"${own.slice(0, 30)}\" ${size.toFixed(1)}px`);
    }
    return small;";

/// Cells whose content is wider than the cell shows (cut, or spilling over).
const CUT_CELLS: &str = "
    return [...document.querySelectorAll('td, th')]
        .filter(c => c.getClientRects().length && c.scrollWidth > c.clientWidth + 1)
        .map(c => `${c.closest('table').id || 'table'}: ${c.innerText.slice(0, 30)}`);";

/// Issue 21's page fixes, each checked where a reviewer would see it: the
/// results table with nine metric columns at 1280 px (no cut cell, the system
/// column fixed, the best value per column marked, a learned reward's column
/// badged and tinted apart with its provenance below), the win-rate page's legend,
/// printed intervals, default comparison, tied-rank note and the length
/// judge's missing LC rate, the Pareto page's distinguishable lines, error
/// bars and stated units, the compare view of a metric comparison (no
/// presentation orders, integers as integers, long texts collapsed), the
/// overview's dataset column and absent ids, empty states without literal
/// backticks, and at 390 px no text under 11 px, no cut cell (tables scroll
/// instead) and nothing wider than the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_reads_at_a_glance_at_1280_and_390_px() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing (scripts/setup installs them)");
        return;
    }
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "glance").await.unwrap();
    dataset(&db, &token).await;
    // A verbose system: responses long enough to be collapsed side by side.
    let lines: Vec<String> = (0..8)
        .map(|i| {
            json!({"id": format!("q{i}"), "prompt": format!("Question {i}: is the river <i>wide</i> & deep?"),
                   "response": format!("{} So the answer is yes.", "The river is wide because the rain upstream never stops. ".repeat(14))})
            .to_string()
        })
        .collect();
    let (status, summary) = push(
        &db,
        &token,
        "river",
        "verbose",
        "canonical",
        &lines.join("\n"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    // An external judge's soft preferences of every system against `baseline`.
    let judgments: Vec<String> = ["base", "mix-0.5", "tuned", "verbose"]
        .iter()
        .enumerate()
        .flat_map(|(s, system)| {
            (0..8).map(move |i| {
                let p = ((s * 3 + i * 5) % 11) as f64 / 10.0;
                json!({"id": format!("q{i}"), "a": "baseline", "b": system, "preference": p.min(1.0)})
                    .to_string()
            })
        })
        .collect();
    let (status, summary) = common::post_as(
        &db,
        "/api/v1/datasets/river/judgments?judge=gpt-judge",
        &token,
        "application/x-ndjson",
        judgments.join("\n").into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    // A dataset with generations and no comparison: the win-rate page's empty state.
    let (status, _) = push(
        &db,
        &token,
        "lonely",
        "only",
        "canonical",
        r#"{"prompt": "q", "response": "a"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for name in [
        "accuracy",
        "length",
        "readability",
        "diversity",
        "label-judge",
    ] {
        upload(&db, &token, builtin(name).unwrap().wasm).await;
    }
    let workers = start_workers(&db, 2);
    let mut jobs = Vec::new();
    for (path, body) in [
        (
            "/api/v1/jobs/score",
            json!({"dataset": "river", "modules": ["accuracy", "length", "readability", "diversity"]}),
        ),
        (
            "/api/v1/jobs/compare",
            json!({"dataset": "river", "judge": "label-judge"}),
        ),
        // Newer than the judge's, and decided by a length metric.
        (
            "/api/v1/jobs/compare",
            json!({"dataset": "river", "judge": "length", "metric": "words"}),
        ),
    ] {
        let (status, job) = post_json(&db, path, &token, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let job = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        jobs.push(job["id"].as_i64().unwrap());
    }
    workers.stop().await;
    // A learned reward (a reward model's scores, `push-scores`) for two
    // systems: its column must read apart from the modules'.
    for (system, offset) in [("base", 0.0), ("tuned", 0.5)] {
        let scores: String = (0..8)
            .map(|i| {
                json!({"id": format!("q{i}"), "prompt": format!("Question {i}"), "score": offset + f64::from(i) / 10.0})
                    .to_string()
                    + "\n"
            })
            .collect();
        let (status, summary) = post_json(
            &db,
            &format!("/api/v1/datasets/river/scores?system={system}&metric=helpful_rm"),
            &token,
            json!({
                "file": format!("scores/{system}.jsonl"),
                "provenance": {"reward_model": "runs/rm-helpful/final", "sha256": "5ca1ab1e".repeat(8),
                               "command": format!("trainer score --rm runs/rm-helpful --input gens/{system}.jsonl --output scores/{system}.jsonl"),
                               "input": format!("gens/{system}.jsonl"), "lines": 8},
                "scores": scores,
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
    }
    let length_job = jobs[2];
    let (_, results) = common::get(&db, "/api/v1/datasets/river/results", Some(&token)).await;
    let columns = results["systems"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["metrics"].as_object().unwrap().keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(columns >= 6, "many metric columns: {columns}");

    let (site, server) = serve(&db).await;
    let dir = artifacts();
    tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        let browser = Browser::open(&driver);
        browser.resize(1280, 900);
        browser.sign_in(&site, &token);

        // Results: nine columns, none cut, the system column fixed, a best per column.
        browser.go(&format!("{site}/datasets/river"));
        assert_eq!(browser.script(CUT_CELLS), json!([]), "cells cut at 1280 px");
        assert_eq!(
            browser.script(
                "return getComputedStyle(document.querySelector('#results tbody th')).position;"
            ),
            "sticky"
        );
        let best_columns = browser.script(
            "const rows = [...document.querySelectorAll('#results tbody tr')]; \
             const n = rows[0].querySelectorAll('td').length; \
             return [...Array(n).keys()].filter(i => rows.some(r => r.querySelectorAll('td')[i].classList.contains('best'))).length;",
        );
        assert_eq!(best_columns, json!(columns), "every column marks its best");
        assert!(
            !browser
                .script("return document.body.innerText;")
                .as_str()
                .unwrap()
                .contains("± 0.0000"),
            "precision follows the interval"
        );
        // The learned reward's column: badged, tinted unlike a module's, its
        // provenance (model hash, command) in a table below.
        let tints = browser.script(
            "const cell = (css) => getComputedStyle(document.querySelector(css)).backgroundColor; \
             return [cell('#results td.learned'), cell('#results td:not(.learned)')];",
        );
        assert_ne!(tints[0], tints[1], "learned cells are tinted: {tints}");
        assert_eq!(
            browser.script(
                "return document.querySelector('#results th.learned .badge.learned').getClientRects().length > 0;"
            ),
            true,
            "the learned badge shows"
        );
        let provenance = browser.script(
            "return [...document.querySelectorAll('#learned tbody tr')].map(r => r.innerText);",
        );
        let provenance = provenance.as_array().unwrap();
        assert_eq!(provenance.len(), 2, "{provenance:?}");
        assert!(
            provenance.iter().all(|r| r.as_str().unwrap().contains("5ca1ab1e5ca1")
                && r.as_str().unwrap().contains("trainer score --rm runs/rm-helpful")),
            "{provenance:?}"
        );
        browser.screenshot(&dir, "glance-results", 1280);

        // Win rates: the judge's comparison by default, a legend, intervals in the cells.
        browser.go(&format!("{site}/datasets/river/winrates"));
        let selected =
            browser.script("return document.querySelector('#job option[selected]').textContent;");
        assert!(
            selected.as_str().unwrap().starts_with("label-judge (judge)"),
            "{selected}"
        );
        assert_eq!(
            browser.script("return document.querySelectorAll('#heatmap-legend .swatch').length;"),
            3
        );
        let intervals = browser.script(
            "return [...document.querySelectorAll('svg.heatmap g.cell[data-value]')] \
             .map(c => c.querySelector('text.ci').textContent);",
        );
        let intervals = intervals.as_array().unwrap();
        assert_eq!(intervals.len(), 20, "5 × 4 off-diagonal cells");
        assert!(
            intervals
                .iter()
                .all(|t| t.as_str().unwrap().contains('–')),
            "{intervals:?}"
        );
        assert!(
            browser
                .script("return document.querySelector('#rank-note').innerText;")
                .as_str()
                .unwrap()
                .contains("share a rank")
        );
        assert_eq!(
            browser.script("return !!document.querySelector('#lc-note');"),
            false
        );
        browser.screenshot(&dir, "glance-winrates", 1280);
        // A length judge: no length-controlled rate, and the page says why.
        browser.go(&format!("{site}/datasets/river/winrates?job={length_job}"));
        assert_eq!(
            browser.script("return !!document.querySelector('#lc-note');"),
            true
        );
        assert!(
            !browser
                .script("return document.querySelector('#pairs thead').innerText;")
                .as_str()
                .unwrap()
                .contains("Length-controlled")
        );

        // Pareto: a wide band and a thin dashed sweep, error bars, stated units.
        browser.go(&format!(
            "{site}/datasets/river/pareto?x=accuracy/accuracy&y=length/words"
        ));
        let lines = browser.script(
            "const f = document.querySelector('.front-line'), s = document.querySelector('.sweep-line'); \
             return [Number(f.getAttribute('stroke-width')), Number(s.getAttribute('stroke-width')), \
                     f.getAttribute('stroke-dasharray'), s.getAttribute('stroke-dasharray'), \
                     f.getAttribute('stroke') !== s.getAttribute('stroke')];",
        );
        assert!(
            lines[0].as_f64().unwrap() >= 3.0 * lines[1].as_f64().unwrap(),
            "{lines}"
        );
        assert_eq!(lines[2], Value::Null, "the front is solid");
        assert!(lines[3].is_string(), "the sweep is dashed");
        assert_eq!(lines[4], true, "in different colours");
        // The λ sweep (a `lambda` and no `sweep` in the metadata) is in the
        // legend with its marker, and the systems in no sweep after it.
        let legend = browser.script(
            "const l = document.querySelector('svg.scatter .scatter-legend'), r = l.getBoundingClientRect(); \
             return [r.width > 0 && r.height > 0, [...l.querySelectorAll('text')].map(t => t.textContent), \
                     l.querySelectorAll('path').length];",
        );
        assert_eq!(legend[0], true, "the legend is drawn: {legend}");
        assert_eq!(
            legend[1],
            json!(["λ sweep (3)", "no sweep (◆ when on the front)"]),
            "{legend}"
        );
        assert_eq!(legend[2], 2, "a marker per entry");
        let bars = browser.script("return document.querySelectorAll('.errbar').length;");
        assert!(bars.as_u64().unwrap() >= 5, "{bars}");
        let note = browser.script("return document.querySelector('#hypervolume-note').innerText;");
        let note = note.as_str().unwrap();
        assert!(
            note.contains("units of accuracy/accuracy × length/words")
                && note.contains("reference point (x ="),
            "{note}"
        );
        browser.screenshot(&dir, "glance-pareto", 1280);

        // Compare, by the length metric: what applies, integers, collapsed texts.
        browser.go(&format!(
            "{site}/datasets/river/compare?a=verbose&b=base&job={length_job}"
        ));
        let text = browser.script("return document.body.innerText;");
        let text = text.as_str().unwrap();
        assert!(!text.contains("B first"), "a metric has no presentation orders");
        assert!(text.contains("Decided by length/words"), "{text}");
        let words = browser.script(
            "return [...document.querySelectorAll('table.scores tr')] \
             .filter(r => r.cells[0].innerText === 'length/words') \
             .flatMap(r => [r.cells[1].innerText, r.cells[2].innerText]);",
        );
        let words = words.as_array().unwrap();
        assert!(!words.is_empty());
        assert!(
            words.iter().all(|w| !w.as_str().unwrap().contains('.')),
            "{words:?}"
        );
        assert_eq!(
            browser.script("return document.querySelectorAll('article.item details').length;"),
            8,
            "each verbose answer collapsed"
        );
        browser.screenshot(&dir, "glance-compare", 1280);

        // Overview: the systems' datasets, no global ids.
        browser.go(&format!("{site}/"));
        let text = browser.script("return document.body.innerText;");
        let text = text.as_str().unwrap();
        assert!(
            !text
                .split(|c: char| c.is_whitespace() || c == '(')
                .any(|w| w.len() > 1 && w.starts_with('#') && w[1..].chars().all(|c| c.is_ascii_digit())),
            "the pages show no global ids: {text}"
        );
        assert_eq!(
            browser.script(
                "return [...document.querySelectorAll('table th')].some(th => th.innerText === 'Datasets');"
            ),
            true
        );

        // An empty state names its command as code, not between backticks.
        browser.go(&format!("{site}/datasets/lonely/winrates"));
        let message = browser.script("return document.querySelector('#message').innerText;");
        assert!(!message.as_str().unwrap().contains('`'), "{message}");
        assert_eq!(
            browser.script("return document.querySelector('#message code').textContent;"),
            "evaluator compare"
        );

        // The leaderboard against the baseline: every system a row, sortable
        // by any header, LC against length plotted, and side by side the
        // judge's preference for each item.
        browser.go(&format!("{site}/datasets/river/leaderboard"));
        assert_eq!(
            browser.script("return document.querySelectorAll('#baseline-leaderboard tbody tr').length;"),
            5
        );
        assert_eq!(
            browser.script("return document.querySelector('#baseline-leaderboard tr.dim td:nth-child(2)').innerText;"),
            "baseline (baseline)"
        );
        assert_eq!(
            browser.script("return document.querySelectorAll('figure.chart svg .point').length;"),
            5
        );
        browser.click("#baseline-leaderboard th:nth-child(7) a");
        browser.wait_for(
            "return location.search.includes('sort=length');",
            "the table sorted by length",
            Duration::from_secs(10),
        );
        let names = browser.script(
            "return [...document.querySelectorAll('#baseline-leaderboard tbody tr')].map(r => r.dataset.system);",
        );
        assert_eq!(names[0], "base", "shortest first: {names}");
        assert_eq!(names[4], "verbose", "{names}");
        let note = browser.script("return document.querySelector('#lc-note').innerText;");
        assert!(!note.as_str().unwrap().contains('`'), "code as code: {note}");
        browser.screenshot(&dir, "glance-leaderboard", 1280);
        browser.click("#baseline-leaderboard tr[data-system=tuned] a");
        browser.wait_for(
            "return location.pathname.endsWith('/compare');",
            "the side-by-side view",
            Duration::from_secs(10),
        );
        let said = browser.script("return document.querySelector('.verdicts.external').innerText;");
        assert!(
            said.as_str().unwrap().starts_with("External: gpt-judge: P(B better) = "),
            "{said}"
        );

        // A phone: no text under 11 px, nothing wider than the screen.
        browser.resize(390, 844);
        for (name, path) in RIVER_PAGES
            .into_iter()
            .chain([("modules", "/modules"), ("leaderboard", "/datasets/river/leaderboard")])
        {
            browser.go(&format!("{site}{path}"));
            assert_eq!(browser.script(SMALL_TEXT), json!([]), "{name} at 390 px");
            assert_eq!(browser.script(CUT_CELLS), json!([]), "cells cut on {name} at 390 px");
            let overflow =
                browser.script("return document.documentElement.scrollWidth - window.innerWidth;");
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{name} overflows by {overflow} px at 390 px"
            );
            browser.screenshot(&dir, &format!("glance-{name}"), 390);
        }
        let errors = browser.errors();
        assert!(errors.is_empty(), "browser errors: {errors:#?}");
        browser.close();
    })
    .await
    .unwrap();
    server.abort();
    db.finish().await;
}
