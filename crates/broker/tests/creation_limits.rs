//! The creation limits through the API: one visitor, one address and one
//! site can each hold only so many live codes and ask for only so many a
//! minute; a refused request gets a 429 (503 for the site) that says when
//! to try again, and stores nothing.

mod common;

use std::time::Duration;

use agent_assist_protocol::{ApiError, CreateCodeResponse, ErrorCode};
use axum::http::HeaderName;
use common::{assert_refused, Broker};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

const VISITOR: &str = "0123456789abcdef0123456789abcdef";

async fn post(broker: &Broker, body: Value, forwarded_for: Option<&str>) -> Response {
    let mut req = broker.client.post(broker.url("/v1/codes")).json(&body);
    if let Some(address) = forwarded_for {
        req = req.header("x-forwarded-for", address);
    }
    req.send().await.expect("request")
}

async fn created(res: Response) -> CreateCodeResponse {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Asserts a 429 whose `Retry-After` header and body agree; returns the
/// seconds and the message.
async fn limited(res: Response) -> (u32, String) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let header: u32 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: ApiError = res.json().await.unwrap();
    assert_eq!(body.error, ErrorCode::RateLimited);
    assert_eq!(body.retry_after, Some(header));
    (header, body.message)
}

#[tokio::test]
async fn one_visitor_holds_two_live_codes_and_asks_for_three_a_minute() {
    let broker = Broker::start().await;
    let body = json!({ "site_key": "limited", "visitor_id": VISITOR });
    let first = created(post(&broker, body.clone(), None).await).await;
    created(post(&broker, body.clone(), None).await).await;

    let before = broker.count_sessions().await;
    let (retry, message) = limited(post(&broker, body.clone(), None).await).await;
    assert!(message.contains("visitor"), "{message}");
    assert!(message.contains("waiting"), "{message}");
    // The first code expires in 20 minutes: that is when a place frees.
    assert_eq!(retry, 20 * 60);
    assert_eq!(broker.count_sessions().await, before, "nothing was stored");

    // Cancelling a code frees its place at once…
    let res = broker
        .post_cancel(&first.session_id, &first.device_token)
        .await;
    assert!(res.status().is_success());
    let third = created(post(&broker, body.clone(), None).await).await;
    broker
        .post_cancel(&third.session_id, &third.device_token)
        .await;
    // …but three requests in a minute is the most.
    let (retry, message) = limited(post(&broker, body.clone(), None).await).await;
    assert!(message.contains("this minute"), "{message}");
    assert_eq!(retry, 60);

    // Another visitor on the same address is not this visitor.
    created(
        post(
            &broker,
            json!({ "site_key": "limited", "visitor_id": "f".repeat(32) }),
            None,
        )
        .await,
    )
    .await;

    // A minute later the rate allows one more (one live code is left).
    broker.clock.advance(Duration::from_secs(61));
    created(post(&broker, body, None).await).await;
}

#[tokio::test]
async fn one_address_holds_four_live_codes_whoever_asks() {
    let broker = Broker::start().await;
    for i in 0..4 {
        // A new visitor id each time, or none: the address still counts.
        let body = if i % 2 == 0 {
            json!({ "site_key": "limited", "visitor_id": format!("{i:032x}") })
        } else {
            json!({ "site_key": "limited" })
        };
        created(post(&broker, body, None).await).await;
    }
    let before = broker.count_sessions().await;
    let (_, message) = limited(post(&broker, json!({ "site_key": "limited" }), None).await).await;
    assert!(message.contains("network address"), "{message}");
    assert_eq!(broker.count_sessions().await, before);
    // Without a trusted proxy a forged header changes nothing.
    let res = post(
        &broker,
        json!({ "site_key": "limited" }),
        Some("203.0.113.9"),
    )
    .await;
    limited(res).await;
}

#[tokio::test]
async fn behind_a_proxy_the_last_forwarded_address_counts() {
    let header = HeaderName::from_static("x-forwarded-for");
    let broker = Broker::start_with(|s| s.with_client_ip_header(Some(header))).await;
    // The client wrote the first entry; the proxy added the last.
    for i in 0..4 {
        let forwarded = format!("198.51.100.{i}, 203.0.113.1");
        created(post(&broker, json!({ "site_key": "limited" }), Some(&forwarded)).await).await;
    }
    let res = post(
        &broker,
        json!({ "site_key": "limited" }),
        Some("198.51.100.77, 203.0.113.1"),
    )
    .await;
    limited(res).await;
    // Another client of the proxy is not limited; IPv6 counts by /64.
    created(
        post(
            &broker,
            json!({ "site_key": "limited" }),
            Some("203.0.113.2"),
        )
        .await,
    )
    .await;
    for i in 0..4 {
        let forwarded = format!("2001:db8:0:1::{i:x}");
        created(post(&broker, json!({ "site_key": "limited" }), Some(&forwarded)).await).await;
    }
    let res = post(
        &broker,
        json!({ "site_key": "limited" }),
        Some("2001:db8:0:1:ffff::1"),
    )
    .await;
    // Another address, but the same /64 as four live codes.
    limited(res).await;
}

#[tokio::test]
async fn a_site_holds_at_most_its_live_codes_from_any_number_of_addresses() {
    let header = HeaderName::from_static("x-forwarded-for");
    let broker = Broker::start_with(|s| s.with_client_ip_header(Some(header))).await;
    let mut codes = Vec::new();
    for i in 0..12 {
        let address = format!("198.51.100.{i}");
        codes.push(
            created(post(&broker, json!({ "site_key": "limited" }), Some(&address)).await).await,
        );
    }
    let before = broker.count_sessions().await;
    let res = post(
        &broker,
        json!({ "site_key": "limited" }),
        Some("198.51.100.200"),
    )
    .await;
    let message = assert_refused(res, ErrorCode::NoFreeCodes).await;
    assert!(
        message.contains("as many codes waiting as it allows"),
        "{message}"
    );
    assert_eq!(broker.count_sessions().await, before);
    // Other sites are not affected.
    broker.create("demo").await;

    // Codes cancelled are counted out at the next sweep.
    for c in &codes[..2] {
        broker.post_cancel(&c.session_id, &c.device_token).await;
    }
    broker.state.sweep().await.unwrap();
    created(
        post(
            &broker,
            json!({ "site_key": "limited" }),
            Some("198.51.100.200"),
        )
        .await,
    )
    .await;
}
