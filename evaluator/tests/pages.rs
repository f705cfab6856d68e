//! The web pages through the router (`oneshot`), on a real PostgreSQL with
//! in-process workers: sessions, team isolation, and every number a page shows
//! checked against the API or the statistics crate.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{TestDb, get, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use evaluator::startup::app;
use evaluator::state::AppState;
use evaluator_stats::{Direction, pareto_front};
use http_body_util::BodyExt;
use reward_builtins::{builtin, test_module};
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn request(db: &TestDb, request: Request<Body>) -> Page {
    let state = AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    };
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn page(db: &TestDb, path: &str, cookie: Option<&str>) -> Page {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    request(db, builder.body(Body::empty()).unwrap()).await
}

async fn post_form(db: &TestDb, path: &str, cookie: Option<&str>, form: &str) -> Page {
    let mut builder =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    request(db, builder.body(Body::from(form.to_string())).unwrap()).await
}

/// Signs in; returns the `name=value` to send back as `Cookie`.
async fn sign_in(db: &TestDb, token: &str) -> String {
    let response = post_form(db, "/login", None, &format!("token={token}")).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.body);
    let set = response.headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// Values of `attribute="..."` in order of appearance.
fn attributes(html: &str, attribute: &str) -> Vec<String> {
    let marker = format!(" {attribute}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// Three systems on four items (as in tests/jobs.rs): `good` right on all,
/// `half` on two, `bad` on none; `half` and `good` carry a λ. Scored by
/// accuracy and length, compared by the label judge (both orders agree) and
/// the position-biased first-wins judge. Returns the token and the two jobs.
async fn evaluated(db: &TestDb) -> (String, i64, i64) {
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let items = [("q1", "yes"), ("q2", "no"), ("q3", "yes"), ("q4", "no")];
    for system in ["good", "half", "bad"] {
        let lines: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, (id, label))| {
                let right = system == "good" || (system == "half" && i < 2);
                let answer = if right { *label } else if *label == "yes" { "no" } else { "yes" };
                let padding = if system == "bad" { "" } else { " with more words" };
                serde_json::json!({
                    "id": id, "prompt": format!("Question {id}?"), "reference": label,
                    "response": format!("Reasoning{padding} for {id} by {system}. So the answer is {answer}."),
                })
                .to_string()
            })
            .collect();
        let (status, summary) =
            push(db, &token, "toy", system, "canonical", &lines.join("\n")).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
    }
    for (system, lambda) in [("half", 0.5), ("good", 1.0)] {
        let request = Request::put(format!("/api/v1/systems/{system}/metadata"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"lambda": lambda}).to_string(),
            ))
            .unwrap();
        assert_eq!(request_status(db, request).await, StatusCode::OK);
    }
    upload(db, &token, builtin("accuracy").unwrap().wasm).await;
    upload(db, &token, builtin("length").unwrap().wasm).await;
    upload(db, &token, builtin("label-judge").unwrap().wasm).await;
    upload(db, &token, test_module("first-wins").unwrap().wasm).await;
    let workers = start_workers(db, 2);
    let (_, score) = post_json(
        db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": ["accuracy", "length"]}),
    )
    .await;
    assert_eq!(
        wait_for_job(db, &token, score["id"].as_i64().unwrap()).await["state"],
        "succeeded"
    );
    let mut jobs = Vec::new();
    for judge in ["first-wins", "label-judge"] {
        let (_, job) = post_json(
            db,
            "/api/v1/jobs/compare",
            &token,
            serde_json::json!({"dataset": "toy", "judge": judge}),
        )
        .await;
        let id = job["id"].as_i64().unwrap();
        assert_eq!(wait_for_job(db, &token, id).await["state"], "succeeded");
        jobs.push(id);
    }
    workers.stop().await;
    (token, jobs[0], jobs[1])
}

async fn request_status(db: &TestDb, request: Request<Body>) -> StatusCode {
    let state = AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    };
    app(state).oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn signing_in_sets_an_http_only_same_site_cookie_that_every_page_needs() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();

    for path in [
        "/",
        "/modules",
        "/datasets/toy",
        "/datasets/toy/winrates",
        "/fragments/jobs",
    ] {
        let response = page(&db, path, None).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers[header::LOCATION], "/login", "{path}");
    }
    let form = page(&db, "/login", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"name="token""#));

    let refused = post_form(&db, "/login", None, "token=mrt_nope").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.get(header::SET_COOKIE).is_none());
    assert!(refused.body.contains("Unknown or revoked token"));

    let response = post_form(&db, "/login", None, &format!("token={token}")).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers[header::LOCATION], "/");
    let set = response.headers[header::SET_COOKIE].to_str().unwrap();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("evaluator_session="), "{set}");
    assert_eq!(
        attributes[0].len(),
        "evaluator_session=".len() + 64,
        "{set}"
    );
    for wanted in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.contains(&wanted), "{wanted} in {set}");
    }
    assert!(
        attributes.iter().any(|a| a.starts_with("Max-Age=")),
        "{set}"
    );
    let cookie = attributes[0].to_string();
    // Only the hash of the session id is stored.
    let id = cookie.split_once('=').unwrap().1;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE id_sha256 = decode($1, 'hex')")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0, "the raw id is not a key of the table");

    let overview = page(&db, "/", Some(&cookie)).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("<h1>lab</h1>"));
    assert_eq!(overview.headers[header::CACHE_CONTROL], "no-store");

    // Signing out deletes the session: the same cookie no longer works.
    let out = post_form(&db, "/logout", Some(&cookie), "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&db, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );

    // Revoking the token ends the sessions opened with it.
    let cookie = sign_in(&db, &token).await;
    assert_eq!(page(&db, "/", Some(&cookie)).await.status, StatusCode::OK);
    teams::revoke_token(&db.pool, &token).await.unwrap();
    assert_eq!(
        page(&db, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );

    // Static files are public and cached for long.
    let htmx = page(&db, "/static/htmx.min.js", None).await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(
        htmx.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    db.finish().await;
}

#[tokio::test]
async fn another_teams_datasets_systems_and_jobs_are_404_pages() {
    let db = TestDb::new().await;
    let (_, job, _) = evaluated(&db).await;
    let other = teams::create_team(&db.pool, "rivals").await.unwrap();
    let cookie = sign_in(&db, &other).await;
    for path in [
        "/datasets/toy",
        "/datasets/toy/results.csv",
        "/datasets/toy/results.json",
        "/datasets/toy/winrates",
        "/datasets/toy/pareto",
        "/datasets/toy/compare?a=good&b=bad",
        &format!("/fragments/jobs?job={job}"),
    ] {
        let response = page(&db, path, Some(&cookie)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.body.contains("Not found"),
            "{path}: {}",
            response.body
        );
    }
    let overview = page(&db, "/", Some(&cookie)).await;
    assert!(!overview.body.contains("toy") && !overview.body.contains("good"));

    let owner = teams::create_token(&db.pool, "lab").await.unwrap();
    let cookie = sign_in(&db, &owner).await;
    for path in [
        "/datasets/nope",
        "/datasets/toy/compare?a=good&b=ghost",
        "/datasets/toy/winrates?job=999999",
        "/datasets/toy/pareto?x=no/such",
    ] {
        assert_eq!(
            page(&db, path, Some(&cookie)).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    db.finish().await;
}

#[tokio::test]
async fn the_results_table_and_its_exports_carry_the_apis_numbers() {
    let db = TestDb::new().await;
    let (token, _, _) = evaluated(&db).await;
    let cookie = sign_in(&db, &token).await;
    let (_, api) = get(&db, "/api/v1/datasets/toy/results", Some(&token)).await;

    let html = page(&db, "/datasets/toy", Some(&cookie)).await;
    assert_eq!(html.status, StatusCode::OK);
    let keys = attributes(&html.body, "data-key");
    let systems = attributes(&html.body, "data-system");
    let means = attributes(&html.body, "data-mean");
    assert_eq!(systems, ["bad", "good", "half"]);
    assert_eq!(means.len(), systems.len() * keys.len());
    for (i, system) in systems.iter().enumerate() {
        let expected = api["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == **system)
            .unwrap();
        for (j, key) in keys.iter().enumerate() {
            let shown: f64 = means[i * keys.len() + j].parse().unwrap();
            assert_eq!(
                shown,
                expected["metrics"][key]["mean"].as_f64().unwrap(),
                "{system} {key}"
            );
        }
    }
    // mean ± 1.96·stderr, printed to the decimals that give the half-width two
    // significant digits: half's accuracy is 0.5 ± 1.96·sqrt(1/3)/2 = 0.57.
    let half_width = 1.96 * (1.0f64 / 3.0).sqrt() / 2.0;
    assert!(
        html.body.contains(&format!("0.50 ± {half_width:.2}")),
        "{}",
        html.body
    );

    // Sorting by a column through the address: best accuracy first.
    let sorted = page(
        &db,
        "/datasets/toy?sort=accuracy/accuracy&order=desc",
        Some(&cookie),
    )
    .await;
    assert_eq!(
        attributes(&sorted.body, "data-system"),
        ["good", "half", "bad"]
    );
    assert!(sorted.body.contains(r#"aria-sort="descending""#));

    let json = page(&db, "/datasets/toy/results.json", Some(&cookie)).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.body).unwrap(),
        api
    );

    let csv = page(&db, "/datasets/toy/results.csv", Some(&cookie)).await;
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("system,metric,direction,mean,stderr,ci_low,ci_high,n,nulls")
    );
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 9, "{line}");
        let m = &api["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == f[0])
            .unwrap()["metrics"][f[1]];
        assert_eq!(f[2], m["direction"]);
        let (mean, stderr): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        assert_eq!(
            (mean, stderr),
            (m["mean"].as_f64().unwrap(), m["stderr"].as_f64().unwrap())
        );
        assert!((f[5].parse::<f64>().unwrap() - (mean - 1.96 * stderr)).abs() < 1e-12);
        assert!((f[6].parse::<f64>().unwrap() - (mean + 1.96 * stderr)).abs() < 1e-12);
        assert_eq!(f[7].parse::<i64>().unwrap(), m["n"].as_i64().unwrap());
        rows += 1;
    }
    assert_eq!(rows, 3 * keys.len());
    db.finish().await;
}

#[tokio::test]
async fn heatmap_cells_are_the_pairs_win_rates_and_the_latest_comparison_is_the_default() {
    let db = TestDb::new().await;
    let (token, biased, labelled) = evaluated(&db).await;
    let cookie = sign_in(&db, &token).await;
    for (path, job) in [
        ("/datasets/toy/winrates".to_string(), labelled),
        (format!("/datasets/toy/winrates?job={biased}"), biased),
    ] {
        let html = page(&db, &path, Some(&cookie)).await;
        assert_eq!(html.status, StatusCode::OK, "{path}");
        assert!(
            html.body
                .contains(&format!(r#"<option value="{job}" selected>"#)),
            "{path}"
        );
        let (_, pairs) = get(&db, &format!("/api/v1/jobs/{job}/pairs"), Some(&token)).await;
        let rows = attributes(&html.body, "data-row");
        let cols = attributes(&html.body, "data-col");
        let values = attributes(&html.body, "data-value");
        assert_eq!(values.len(), 6, "3 systems: every off-diagonal cell");
        let cell: BTreeMap<(String, String), f64> = rows
            .into_iter()
            .zip(cols)
            .zip(values.iter().map(|v| v.parse::<f64>().unwrap()))
            .collect();
        for p in pairs["pairs"].as_array().unwrap() {
            let (a, b) = (
                p["a"].as_str().unwrap().to_string(),
                p["b"].as_str().unwrap().to_string(),
            );
            let rate = p["win_rate"].as_f64().unwrap();
            assert_eq!(cell[&(a.clone(), b.clone())], rate, "{p}");
            assert!((cell[&(b, a)] - (1.0 - rate)).abs() < 1e-12, "{p}");
            // The value is printed in the cell, not only coloured.
            assert!(html.body.contains(&format!(">{rate:.2}")), "{rate}");
        }
        let leaderboard = html.body.split(r#"id="leaderboard""#).nth(1).unwrap();
        for system in ["good", "half", "bad"] {
            assert!(leaderboard.contains(&format!(r#"data-system="{system}""#)));
        }
    }
    // The label judge ranks good first.
    let html = page(&db, "/datasets/toy/winrates", Some(&cookie)).await;
    let board = html.body.split(r#"id="leaderboard""#).nth(1).unwrap();
    assert!(board.find("good").unwrap() < board.find("bad").unwrap());
    db.finish().await;
}

#[tokio::test]
async fn the_pareto_page_marks_exactly_the_front_and_joins_the_sweep() {
    let db = TestDb::new().await;
    let (token, _, _) = evaluated(&db).await;
    let cookie = sign_in(&db, &token).await;
    let (_, api) = get(&db, "/api/v1/datasets/toy/results", Some(&token)).await;
    let (x, y) = ("accuracy/accuracy", "length/words");
    let html = page(
        &db,
        &format!("/datasets/toy/pareto?x={x}&y={y}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(html.status, StatusCode::OK, "{}", html.body);

    let systems: Vec<&serde_json::Value> = api["systems"].as_array().unwrap().iter().collect();
    let points: Vec<Vec<f64>> = systems
        .iter()
        .map(|s| {
            vec![
                s["metrics"][x]["mean"].as_f64().unwrap(),
                s["metrics"][y]["mean"].as_f64().unwrap(),
            ]
        })
        .collect();
    let front = pareto_front(
        &points,
        &[Direction::HigherIsBetter, Direction::LowerIsBetter],
    )
    .unwrap();
    let expected: BTreeSet<String> = front
        .iter()
        .map(|&i| systems[i]["system"].as_str().unwrap().to_string())
        .collect();
    let marked: BTreeSet<String> = html
        .body
        .match_indices(r#"class="point front" data-system=""#)
        .map(|(at, m)| {
            let rest = &html.body[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    assert_eq!(marked, expected);
    assert_eq!(
        html.body.matches(r#"class="point dominated""#).count(),
        3 - expected.len()
    );
    assert!(html.body.contains(r#"class="front-line""#));
    assert!(
        html.body.contains(r#"class="sweep-line""#),
        "half and good carry a λ"
    );
    assert!(html.body.contains(r#"id="hypervolume""#));
    // A point opens the compare view.
    assert!(html.body.contains("/datasets/toy/compare?a="));
    db.finish().await;
}

/// The trainer's two sweeps and a baseline on dataset `sweeps`, scored by the
/// length module. Every response repeats one text of `w` words of `l`
/// letters, so words = w and characters = w·(l + 1) − 1, both lower is better:
/// fewer words cost longer ones, a trade-off. Metadata as the trainer pushes
/// it, every value a string. Returns the token.
async fn two_sweeps(db: &TestDb) -> String {
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let soup = |lambda: &str| serde_json::json!({"sweep": "soup", "lambda": lambda, "soup_of": "runA,runB", "trainer": "trainer soup"});
    let morl = |lambda: &str, weights: &str| serde_json::json!({"sweep": "morl", "lambda": lambda, "weights": weights, "trainer": "trainer sweep"});
    for (system, w, l, metadata) in [
        ("soup-0", 10, 1, Some(soup("0"))),
        ("soup-0.5", 6, 3, Some(soup("0.5"))),
        ("soup-1", 3, 9, Some(soup("1"))),
        (
            "morl-0.25",
            8,
            2,
            Some(morl("0.25", r#"{"rougeL":0.75,"fk_grade":0.25}"#)),
        ),
        (
            "morl-0.75",
            4,
            5,
            Some(morl("0.75", r#"{"rougeL":0.25,"fk_grade":0.75}"#)),
        ),
        ("baseline", 12, 3, None),
    ] {
        let response = vec!["x".repeat(l); w].join(" ");
        let lines: Vec<String> = (0..3)
            .map(|i| {
                serde_json::json!({"id": format!("q{i}"), "prompt": format!("Question {i}?"), "response": response})
                    .to_string()
            })
            .collect();
        let (status, summary) =
            push(db, &token, "sweeps", system, "canonical", &lines.join("\n")).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
        if let Some(metadata) = metadata {
            let request = Request::put(format!("/api/v1/systems/{system}/metadata"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(metadata.to_string()))
                .unwrap();
            assert_eq!(request_status(db, request).await, StatusCode::OK);
        }
    }
    upload(db, &token, builtin("length").unwrap().wasm).await;
    let workers = start_workers(db, 2);
    let (_, score) = post_json(
        db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "sweeps", "modules": ["length"]}),
    )
    .await;
    assert_eq!(
        wait_for_job(db, &token, score["id"].as_i64().unwrap()).await["state"],
        "succeeded"
    );
    workers.stop().await;
    token
}

/// The area that `points` dominate from `reference`, both axes lower is
/// better, as a staircase: the distinct gains on x cut the plane into strips,
/// each as tall as the largest gain on y among the points reaching past it.
fn staircase(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let gains: Vec<(f64, f64)> = points
        .iter()
        .map(|&(x, y)| (reference.0 - x, reference.1 - y))
        .filter(|&(gx, gy)| gx > 0.0 && gy > 0.0)
        .collect();
    let mut cuts: Vec<f64> = gains.iter().map(|g| g.0).collect();
    cuts.push(0.0);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    cuts.windows(2)
        .map(|strip| {
            let height = gains
                .iter()
                .filter(|g| g.0 >= strip[1])
                .map(|g| g.1)
                .fold(0.0, f64::max);
            (strip[1] - strip[0]) * height
        })
        .sum()
}

#[tokio::test]
async fn the_pareto_page_overlays_each_sweep_with_its_marker_legend_and_hypervolume() {
    let db = TestDb::new().await;
    let token = two_sweeps(&db).await;
    let cookie = sign_in(&db, &token).await;
    let (x, y) = ("length/words", "length/characters");
    let (_, results) = get(&db, "/api/v1/datasets/sweeps/results", Some(&token)).await;
    let value = |system: &str, metric: &str| {
        results["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == system)
            .unwrap()["metrics"][metric]["mean"]
            .as_f64()
            .unwrap()
    };
    let point = |system: &str| (value(system, x), value(system, y));
    assert_eq!(point("soup-0"), (10.0, 19.0), "the data are as designed");
    let all = [
        "baseline",
        "morl-0.25",
        "morl-0.75",
        "soup-0",
        "soup-0.5",
        "soup-1",
    ];
    // The common reference: the worst (largest) value on each axis.
    let reference = all
        .iter()
        .map(|s| point(s))
        .fold((0.0, 0.0), |r, p| (f64::max(r.0, p.0), f64::max(r.1, p.1)));
    assert_eq!(reference, (12.0, 47.0), "the baseline's");
    let soup = ["soup-0", "soup-0.5", "soup-1"];
    let morl = ["morl-0.25", "morl-0.75"];
    let volume = |systems: &[&str]| {
        let points: Vec<(f64, f64)> = systems.iter().map(|s| point(s)).collect();
        staircase(&points, reference)
    };
    // By hand: soup's gains (2, 28), (6, 24), (9, 18): 3·18 + 4·24 + 2·28;
    // morl's (4, 24), (8, 24): 8·24; all of them: 1·18 + 2·24 + 4·24 + 2·28.
    assert_eq!(volume(&soup), 206.0);
    assert_eq!(volume(&morl), 192.0);
    assert_eq!(volume(&all), 218.0);
    // Not dominated within the sweep: morl-0.75 has fewer words than
    // morl-0.25 at the same length.
    let own_front = |systems: &[&str]| -> usize {
        systems
            .iter()
            .filter(|a| {
                !systems.iter().any(|b| {
                    let (pa, pb) = (point(a), point(b));
                    pb.0 <= pa.0 && pb.1 <= pa.1 && pb != pa
                })
            })
            .count()
    };
    assert_eq!((own_front(&soup), own_front(&morl)), (3, 1));

    let html = page(
        &db,
        &format!("/datasets/sweeps/pareto?x={x}&y={y}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(html.status, StatusCode::OK, "{}", html.body);
    let body = &html.body;
    // The legend names both sweeps, each with its own marker.
    let legend = &body[body.find(r#"class="scatter-legend""#).expect("a legend")..];
    let entry_marker = |sweep: &str| {
        let at = legend
            .find(&format!(r#"data-sweep="{sweep}""#))
            .unwrap_or_else(|| panic!("no legend entry for {sweep}: {legend}"));
        let before = &legend[..at];
        let start = before.rfind(r#"data-marker=""#).unwrap() + 13;
        before[start..start + before[start..].find('"').unwrap()].to_string()
    };
    assert!(legend.contains(">sweep soup (3)</text>"), "{legend}");
    assert!(legend.contains(">sweep morl (2)</text>"), "{legend}");
    let (soup_marker, morl_marker) = (entry_marker("sweep soup"), entry_marker("sweep morl"));
    assert_ne!(soup_marker, morl_marker, "the sweeps' shapes differ");
    // Every point wears its sweep's marker; the baseline the plain one.
    fn element<'a>(body: &'a str, system: &str) -> &'a str {
        let at = body
            .find(&format!(r#"data-system="{system}" data-marker=""#))
            .unwrap_or_else(|| panic!("no point {system}"));
        &body[at..at + body[at..].find("</a>").unwrap()]
    }
    let point_element = |system: &str| element(body, system);
    for (systems, marker) in [(&soup[..], &soup_marker), (&morl[..], &morl_marker)] {
        for system in systems {
            assert!(
                point_element(system).contains(&format!(r#"data-marker="{marker}""#)),
                "{system}"
            );
        }
    }
    assert!(
        point_element("baseline").contains(r#"data-marker="circle""#),
        "dominated, in no sweep"
    );
    // One line per sweep, in λ order.
    assert_eq!(body.matches(r#"class="sweep-line""#).count(), 2);
    // Hover: values, status, sweep, λ, and weights where there are some.
    let title = |system: &str| {
        let element = point_element(system);
        let start = element.find("<title>").unwrap() + 7;
        element[start..element.find("</title>").unwrap()].to_string()
    };
    assert_eq!(
        title("soup-0.5"),
        "soup-0.5: length/words = 6, length/characters = 23 (dominated, sweep soup, λ = 0.5)"
    );
    assert_eq!(
        title("morl-0.75"),
        "morl-0.75: length/words = 4, length/characters = 23 (on the front, sweep morl, \
         λ = 0.75, weights rougeL 0.25 · fk_grade 0.75)"
    );
    assert!(
        body.contains(&format!(r#"title="{}""#, title("soup-1"))),
        "the row says it too"
    );
    // The per-sweep table: points, own front, hypervolume.
    let sweeps_table = &body[body.find(r#"id="sweeps""#).unwrap()..];
    for (label, systems, front) in [("sweep soup", &soup[..], 3), ("sweep morl", &morl[..], 1)] {
        let row_start = sweeps_table
            .find(&format!(r#"<tr data-sweep="{label}">"#))
            .unwrap();
        let row =
            &sweeps_table[row_start..row_start + sweeps_table[row_start..].find("</tr>").unwrap()];
        let cells: Vec<&str> = row
            .split(r#"<td class="num">"#)
            .skip(1)
            .map(|c| &c[..c.find("</td>").unwrap()])
            .collect();
        let expected = [
            systems.len().to_string(),
            front.to_string(),
            web::format::number(volume(systems)),
        ];
        assert_eq!(cells, expected, "{label}");
    }
    assert!(
        body.contains(&format!(
            r#"id="hypervolume">{}</p>"#,
            web::format::number(volume(&all))
        )),
        "the overall hypervolume"
    );

    // The API: the same numbers, as documented (`get` checks the schema).
    let (status, view) = get(
        &db,
        &format!("/api/v1/datasets/sweeps/pareto?x={x}&y={y}"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (
            view["dataset"].as_str(),
            view["x"].as_str(),
            view["y"].as_str()
        ),
        (Some("sweeps"), Some(x), Some(y))
    );
    assert_eq!(
        view["directions"],
        serde_json::json!({"x": "lower", "y": "lower"})
    );
    assert_eq!(view["reference"], serde_json::json!([12.0, 47.0]));
    assert_eq!(view["hypervolume"].as_f64(), Some(volume(&all)));
    assert_eq!(
        view["front"],
        serde_json::json!(["morl-0.75", "soup-0", "soup-1"])
    );
    let points = view["points"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    let soup_half = points.iter().find(|p| p["system"] == "soup-0.5").unwrap();
    assert_eq!(
        (
            soup_half["x"].as_f64(),
            soup_half["y"].as_f64(),
            soup_half["on_front"].as_bool(),
            soup_half["sweep"].as_str(),
            soup_half["lambda"].as_f64()
        ),
        (Some(6.0), Some(23.0), Some(false), Some("soup"), Some(0.5))
    );
    // Identical responses: no spread, the interval is the point.
    let ci: Vec<f64> = serde_json::from_value(soup_half["x_ci"].clone()).unwrap();
    assert!(
        ci.len() == 2 && ci.iter().all(|v| (v - 6.0).abs() < 1e-9),
        "{ci:?}"
    );
    assert_eq!(soup_half["metadata"]["soup_of"], "runA,runB");
    let baseline = points.iter().find(|p| p["system"] == "baseline").unwrap();
    assert_eq!(
        (baseline["sweep"].is_null(), baseline["lambda"].is_null()),
        (true, true)
    );
    assert_eq!(
        view["sweeps"],
        serde_json::json!([
            {"name": "morl", "points": ["morl-0.25", "morl-0.75"], "front": ["morl-0.75"], "hypervolume": volume(&morl)},
            {"name": "soup", "points": soup, "front": soup, "hypervolume": volume(&soup)},
        ])
    );
    // Axes default to the first two metrics by name, as on the page.
    let (_, defaulted) = get(&db, "/api/v1/datasets/sweeps/pareto", Some(&token)).await;
    assert_eq!(
        (defaulted["x"].as_str(), defaulted["y"].as_str()),
        (Some("length/characters"), Some("length/sentences"))
    );
    // An unknown metric is a 404 that names it and lists the dataset's.
    let (status, error) = get(
        &db,
        "/api/v1/datasets/sweeps/pareto?x=length/words&y=rouge/rougeL",
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(
        error["error"]["message"],
        "`sweeps` has no metric `rouge/rougeL`; its metrics are `length/characters`, \
         `length/sentences`, `length/words`"
    );
    let (status, _) = get(&db, "/api/v1/datasets/nope/pareto", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&db, "/api/v1/datasets/sweeps/pareto", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    db.finish().await;
}

#[tokio::test]
async fn the_compare_view_shows_verdicts_from_as_side_with_filters_search_and_pages() {
    let db = TestDb::new().await;
    let (token, biased, labelled) = evaluated(&db).await;
    let cookie = sign_in(&db, &token).await;
    let outcomes = |html: &str| attributes(html, "data-outcome");

    // The label judge prefers good in both orders, whichever side good is on.
    let view = page(
        &db,
        &format!("/datasets/toy/compare?a=good&b=bad&job={labelled}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(outcomes(&view.body), ["A", "A", "A", "A"]);
    assert!(view.body.contains("A first → <strong>A</strong>"));
    assert!(view.body.contains("B first → <strong>A</strong>"));
    assert!(
        view.body
            .contains("Reasoning with more words for q1 by good")
    );
    assert!(view.body.contains("<code>accuracy/accuracy</code>"));
    let flipped = page(
        &db,
        &format!("/datasets/toy/compare?a=bad&b=good&job={labelled}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(outcomes(&flipped.body), ["B", "B", "B", "B"]);
    assert!(flipped.body.contains("B first → <strong>B</strong>"));

    let only = |filter: &str, a: &str, b: &str, job: i64| {
        format!("/datasets/toy/compare?a={a}&b={b}&job={job}&filter={filter}")
    };
    assert_eq!(
        outcomes(
            &page(&db, &only("a", "good", "bad", labelled), Some(&cookie))
                .await
                .body
        )
        .len(),
        4
    );
    assert_eq!(
        outcomes(
            &page(&db, &only("b", "good", "bad", labelled), Some(&cookie))
                .await
                .body
        )
        .len(),
        0
    );
    // The position-biased judge: every item a tie, every item inconsistent.
    for filter in ["ties", "inconsistent"] {
        let html = page(&db, &only(filter, "bad", "good", biased), Some(&cookie))
            .await
            .body;
        assert_eq!(outcomes(&html), ["tie", "tie", "tie", "tie"], "{filter}");
    }
    let html = page(
        &db,
        &only("inconsistent", "bad", "good", biased),
        Some(&cookie),
    )
    .await
    .body;
    assert!(html.contains("position-inconsistent</span>"));
    // Search in prompts and responses, case-insensitive.
    let html = page(
        &db,
        "/datasets/toy/compare?a=good&b=bad&q=QUESTION%20q3",
        Some(&cookie),
    )
    .await
    .body;
    assert_eq!(attributes(&html, "data-key"), ["q3"]);
    // Default job: the newest succeeded comparison of the pair.
    let html = page(&db, "/datasets/toy/compare?a=good&b=half", Some(&cookie))
        .await
        .body;
    assert!(html.contains(&format!(r#"<option value="{labelled}" selected>"#)));
    // Past the last page: nothing, and a link back.
    let html = page(
        &db,
        "/datasets/toy/compare?a=good&b=bad&page=2",
        Some(&cookie),
    )
    .await
    .body;
    assert!(html.contains("No items on this page") && html.contains(r#"rel="prev""#));
    db.finish().await;
}

#[tokio::test]
async fn the_modules_form_stores_valid_uploads_and_shows_refusals_inline() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let cookie = sign_in(&db, &token).await;
    let upload_form = |bytes: &[u8]| {
        let boundary = "XyZbOuNdArY";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"m.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Request::post("/modules")
            .header(header::COOKIE, &cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let refused = request(&db, upload_form(b"\0asm not really")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(r#"id="upload-error""#),
        "{}",
        refused.body
    );
    let stored = request(&db, upload_form(builtin("length").unwrap().wasm)).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.body);
    assert!(stored.body.contains(r#"id="upload-notice""#));
    assert!(
        stored.body.contains("<code>words</code> ↓ lower is better"),
        "{}",
        stored.body
    );
    let again = request(&db, upload_form(builtin("length").unwrap().wasm)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("was already stored"));
    db.finish().await;
}

#[tokio::test]
async fn the_overview_shows_failures_with_their_cause_and_polls_only_while_jobs_run() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "faults").await.unwrap();
    let lines: Vec<String> = ["panic", "b"]
        .iter()
        .map(|p| serde_json::json!({"prompt": p, "response": "r"}).to_string())
        .collect();
    push(&db, &token, "faulty", "sys", "canonical", &lines.join("\n")).await;
    let hostile = upload(&db, &token, test_module("hostile").unwrap().wasm).await;
    let cookie = sign_in(&db, &token).await;
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "faulty", "modules": [hostile.to_string()]}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();

    // Queued: the jobs table polls its fragment, which answers the table alone.
    let overview = page(&db, "/", Some(&cookie)).await.body;
    assert!(
        overview.contains(r#"hx-get="/fragments/jobs""#),
        "{overview}"
    );
    let fragment = page(&db, &format!("/fragments/jobs?job={id}"), Some(&cookie)).await;
    assert!(
        fragment
            .body
            .trim_start()
            .starts_with(r#"<section id="jobs""#)
    );
    assert!(fragment.body.contains(r#"data-state="queued""#));
    assert!(fragment.headers.get("hx-refresh").is_none());

    let workers = start_workers(&db, 1);
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "failed");
    workers.stop().await;

    // Finished: no more polling, the followed job's page reloads, and the
    // failure is listed with its cause.
    let fragment = page(&db, &format!("/fragments/jobs?job={id}"), Some(&cookie)).await;
    assert!(!fragment.body.contains("hx-get"));
    assert_eq!(fragment.headers["hx-refresh"], "true");
    let overview = page(&db, "/", Some(&cookie)).await.body;
    assert!(!overview.contains("hx-get"));
    let failures = overview
        .split(r#"id="failures-h""#)
        .nth(1)
        .expect("a failures section");
    assert!(failures.contains("guest_panic"), "{failures}");
    assert!(failures.contains("hostile"), "{failures}");
    db.finish().await;
}
