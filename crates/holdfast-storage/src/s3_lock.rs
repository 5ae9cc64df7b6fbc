//! S3 Object Lock requests that OpenDAL does not offer: reading the bucket's lock
//! configuration, setting its default retention, and reading and extending one object's
//! retention. Requests are signed with reqsign (OpenDAL's own signer) and sent with reqwest.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use reqsign_aws_v4::{Credential, RequestSigner};
use reqsign_core::{Context, SignRequest};
use sha2::Sha256;

use crate::{ErrorKind, RetentionMode, StorageError};

/// What a lock request needs to reach the bucket.
pub(crate) struct LockClient {
    pub http: reqwest::Client,
    pub signer: RequestSigner,
    pub credential: Option<Credential>,
    /// `http(s)://host[:port]`, path-style.
    pub endpoint: String,
    pub bucket: String,
    pub location: String,
}

fn mode_str(m: RetentionMode) -> &'static str {
    match m {
        RetentionMode::Governance => "GOVERNANCE",
        RetentionMode::Compliance => "COMPLIANCE",
    }
}

/// The text between `<tag>` and `</tag>`, if any.
pub(crate) fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

impl LockClient {
    fn err(&self, op: &'static str, object: &str, kind: ErrorKind, msg: String) -> StorageError {
        StorageError::new(kind, op, object, self.location.clone(), msg)
    }

    /// Send a signed request; returns (status, body).
    pub async fn send(
        &self,
        op: &'static str,
        method: http::Method,
        key: &str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), StorageError> {
        let (st, body, _) = self.send_full(op, method, key, query, body).await?;
        Ok((st, body))
    }

    /// Send a signed request; returns (status, body, headers).
    async fn send_full(
        &self,
        op: &'static str,
        method: http::Method,
        key: &str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String, http::HeaderMap), StorageError> {
        let path = if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, key)
        };
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint.trim_end_matches('/'))
        } else {
            format!("{}{path}?{query}", self.endpoint.trim_end_matches('/'))
        };
        let mut b = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(
                "x-amz-content-sha256",
                hex::encode(<Sha256 as sha2::Digest>::digest(&body)),
            );
        if !body.is_empty() {
            let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
            b = b
                .header("content-md5", md5)
                .header("content-type", "application/xml");
        }
        let (mut parts, ()) = b
            .body(())
            .map_err(|e| self.err(op, key, ErrorKind::Permanent, e.to_string()))?
            .into_parts();
        if let Some(c) = &self.credential {
            self.signer
                .sign_request(&Context::new(), &mut parts, Some(c), None)
                .await
                .map_err(|e| self.err(op, key, ErrorKind::Permanent, e.to_string()))?;
        }
        let mut rb = self.http.request(method, &url);
        for (k, v) in &parts.headers {
            rb = rb.header(k, v);
        }
        let resp = rb.body(body).send().await.map_err(|e| {
            self.err(
                op,
                key,
                ErrorKind::Transient,
                format!("cannot reach the endpoint {}: {e}", self.endpoint),
            )
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text, headers))
    }

    fn fail(&self, op: &'static str, key: &str, status: u16, body: &str) -> StorageError {
        let code = xml_value(body, "Code").unwrap_or("");
        let kind = match status {
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            429 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        self.err(op, key, kind, format!("HTTP {status} {code}"))
    }

    /// Whether Object Lock is enabled on the bucket.
    pub async fn enabled(&self) -> Result<bool, StorageError> {
        let (st, body) = self
            .send("object-lock", http::Method::GET, "", "object-lock", vec![])
            .await?;
        match st {
            200 => Ok(xml_value(&body, "ObjectLockEnabled") == Some("Enabled")),
            404 | 400 => Ok(false),
            _ => Err(self.fail("object-lock", "", st, &body)),
        }
    }

    /// Set the bucket's default retention.
    pub async fn set_default(&self, mode: RetentionMode, days: u32) -> Result<(), StorageError> {
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>{}</Mode><Days>{days}</Days></DefaultRetention></Rule>\
             </ObjectLockConfiguration>",
            mode_str(mode)
        );
        self.put_xml("object-lock", "", body).await
    }

    /// PUT an XML configuration to `?{op}` of the bucket or an object; 200 or an error.
    async fn put_xml(&self, op: &'static str, key: &str, body: String) -> Result<(), StorageError> {
        let (st, resp) = self
            .send(op, http::Method::PUT, key, op, body.into_bytes())
            .await?;
        if st == 200 {
            Ok(())
        } else {
            Err(self.fail(op, key, st, &resp))
        }
    }

    /// The retain-until date of an object (Unix seconds), if it has one: from the
    /// `x-amz-object-lock-retain-until-date` header of a HEAD request.
    pub async fn retention(&self, key: &str) -> Result<Option<i64>, StorageError> {
        let (st, _, headers) = self
            .send_full("retention", http::Method::HEAD, key, "", vec![])
            .await?;
        match st {
            200 => Ok(headers
                .get("x-amz-object-lock-retain-until-date")
                .and_then(|v| v.to_str().ok())
                .and_then(|d| d.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_second())),
            _ => Err(self.fail("retention", key, st, "")),
        }
    }

    /// Set an object's retention (never shortening it).
    pub async fn retain(
        &self,
        key: &str,
        mode: RetentionMode,
        until: i64,
    ) -> Result<(), StorageError> {
        if self.retention(key).await?.is_some_and(|cur| cur >= until) {
            return Ok(());
        }
        let date = jiff::Timestamp::from_second(until)
            .map_err(|e| self.err("retention", key, ErrorKind::Permanent, e.to_string()))?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{date}</RetainUntilDate></Retention>",
            mode_str(mode)
        );
        self.put_xml("retention", key, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values() {
        let x = "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>";
        assert_eq!(xml_value(x, "Mode"), Some("COMPLIANCE"));
        assert_eq!(xml_value(x, "Missing"), None);
    }
}
