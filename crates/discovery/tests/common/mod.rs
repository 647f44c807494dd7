//! What the registry's HTTP tests share: one request over a raw socket, and a registration.

#![allow(dead_code)]

use breakwater_discovery::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A peer may answer (and close) before reading all of an oversized body.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: headers[9..12].parse().unwrap(),
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

pub fn instance_json(app: &str, id: &str) -> String {
    serde_json::json!({"instance": {
        "instanceId": id, "hostName": "10.0.0.7", "app": app, "ipAddr": "10.0.0.7",
        "status": "UP", "port": {"$": 8080, "@enabled": "true"}, "vipAddress": "orders,orders-v2",
        "dataCenterInfo": {"@class": wire::AMAZON_CLASS, "name": "Amazon",
            "metadata": {"instance-id": id, "availability-zone": "eu-west-1a"}},
        "leaseInfo": {"durationInSecs": 30}
    }})
    .to_string()
}
