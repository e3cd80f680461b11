//! Request parameter parsing: query strings, `application/x-www-form-urlencoded` and
//! `multipart/form-data` bodies, HTTP Basic and Bearer credentials. Garbage yields empty
//! results, never a panic.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::http::HttpRequest;

pub type Params = Vec<(String, String)>;

/// Decode an urlencoded string (`+` = space).
pub fn parse_urlencoded(s: &[u8]) -> Params {
    url::form_urlencoded::parse(s).into_owned().collect()
}

/// Body parameters, by Content-Type: multipart, or urlencoded (also the fallback when the
/// type is missing or unknown and the body looks like `a=b`).
pub fn parse_body(req: &HttpRequest) -> Params {
    if req.body.is_empty() {
        return Vec::new();
    }
    let ct = req.header("content-type").unwrap_or("").to_string();
    let ct_lower = ct.to_ascii_lowercase();
    if ct_lower.starts_with("multipart/form-data") {
        return boundary_of(&ct)
            .map(|b| parse_multipart(&req.body, &b))
            .unwrap_or_default();
    }
    if ct_lower.starts_with("application/json") {
        return Vec::new();
    }
    parse_urlencoded(&req.body)
}

fn boundary_of(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parse `multipart/form-data`; file parts are kept as text values like any other part.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Params {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let Some(mut pos) = find(body, delim.as_bytes(), 0) else {
        return out;
    };
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        // Skip the line break after the delimiter.
        if body[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if body[pos..].starts_with(b"\n") {
            pos += 1;
        }
        let Some(next) = find(body, delim.as_bytes(), pos) else {
            break;
        };
        let part = &body[pos..next];
        let (head, value) = match find(part, b"\r\n\r\n", 0) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find(part, b"\n\n", 0) {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => (part, &part[part.len()..]),
            },
        };
        let value = value
            .strip_suffix(b"\r\n")
            .or_else(|| value.strip_suffix(b"\n"))
            .unwrap_or(value);
        let head = String::from_utf8_lossy(head);
        let name = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').find_map(|p| {
                let (pk, pv) = p.trim().split_once('=')?;
                (pk.trim() == "name").then(|| pv.trim().trim_matches('"').to_string())
            })
        });
        if let Some(name) = name {
            out.push((name, String::from_utf8_lossy(value).into_owned()));
        }
        pos = next;
    }
    out
}

/// `(client_id, client_secret)` from `Authorization: Basic …` (components percent-decoded).
pub fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let h = req.header("authorization")?;
    let (scheme, rest) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((dec(id), dec(secret)))
}

/// The token from `Authorization: Bearer …` (or `OAuth …`).
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let h = req.header("authorization")?;
    let (scheme, rest) = h.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| rest.trim().to_string())
}

/// First value of `name` in `params`.
pub fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"response_type\"\r\n\r\ndevice_code\r\n--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nPlatformCLI\r\n--XyZ--\r\n";
        let p = parse_multipart(body, "XyZ");
        assert_eq!(
            p,
            vec![
                ("response_type".to_string(), "device_code".to_string()),
                ("client_id".to_string(), "PlatformCLI".to_string())
            ]
        );
        assert!(parse_multipart(b"garbage", "XyZ").is_empty());
        assert!(parse_multipart(b"--XyZ", "XyZ").is_empty());
        assert!(parse_multipart(b"--XyZ\r\n", "XyZ").is_empty());
    }
}
