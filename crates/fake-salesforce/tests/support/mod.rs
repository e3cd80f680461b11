//! A tiny blocking HTTP/1.1 client over `TcpStream` for the fake's tests (one request per
//! connection, `Connection: close`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fake_salesforce::FakeSalesforce;
use serde_json::Value;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
    /// Top-level keys in wire order.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let v = self.json();
        let obj = v.as_object().expect("object");
        // serde_json sorts keys; recover wire order from positions in the body.
        let mut pos: Vec<(usize, String)> = obj
            .keys()
            .map(|k| (self.body.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        pos.sort();
        keys.extend(pos.into_iter().map(|(_, k)| k));
        keys
    }
    pub fn err(&self) -> (u16, String, String) {
        let j = self.json();
        (
            self.status,
            j["error"].as_str().unwrap_or("").to_string(),
            j["error_description"].as_str().unwrap_or("").to_string(),
        )
    }
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Send a raw request; `Err` if the connection closed without a complete response.
pub fn raw(
    sf: &FakeSalesforce,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, String> {
    let mut s = TcpStream::connect(sf.host()).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        sf.host()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    parse_response(&out)
}

pub fn parse_response(out: &[u8]) -> Result<Resp, String> {
    let text = String::from_utf8_lossy(out).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("no response head: {text:?}"));
    };
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let resp = Resp {
        status,
        headers,
        body: body.to_string(),
    };
    if let Some(cl) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        && cl != resp.body.len()
    {
        return Err(format!("truncated: {} of {cl} bytes", resp.body.len()));
    }
    Ok(resp)
}

pub fn post(sf: &FakeSalesforce, path: &str, params: &[(&str, &str)]) -> Resp {
    raw(
        sf,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form(params).as_bytes(),
    )
    .unwrap()
}

pub fn token(sf: &FakeSalesforce, params: &[(&str, &str)]) -> Resp {
    post(sf, "/services/oauth2/token", params)
}

pub fn get(sf: &FakeSalesforce, target: &str, bearer: Option<&str>) -> Resp {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    raw(sf, "GET", target, &headers, b"").unwrap()
}

pub fn introspect(sf: &FakeSalesforce, client_id: &str, secret: &str, tok: &str) -> Resp {
    post(
        sf,
        "/services/oauth2/introspect",
        &[
            ("token", tok),
            ("client_id", client_id),
            ("client_secret", secret),
        ],
    )
}

/// Query parameters of a redirect Location.
pub fn location_params(r: &Resp) -> Vec<(String, String)> {
    let loc = r.header("location").expect("Location header");
    let q = loc.split_once('?').map(|x| x.1).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

pub fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}
