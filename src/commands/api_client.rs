//! A client of a running atalaya's HTTP API, for `send`, `alerts` and `silence`: the base
//! URL from `--url`/`$ATALAYA_URL`, the bearer token from `$ATALAYA_TOKEN`, and errors
//! that say what the server said.

use anyhow::Context;
use serde_json::Value;

/// The environment variable holding the API token, if the instance requires one.
pub const TOKEN_ENV: &str = "ATALAYA_TOKEN";

pub struct ApiClient {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(url: &str) -> Self {
        Self {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            token: std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_owned()),
        }
    }

    /// A GET of `path` whose body is read as it comes (server-sent events); an error naming
    /// the status and the reason unless it succeeds.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self.send(self.request(reqwest::Method::GET, path)).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(refused(status, &body));
        }
        Ok(response)
    }

    /// Sends a request to `path` (with a JSON body when given); returns the JSON answer of
    /// a success (`null` for an empty one), or an error naming the status and the reason.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        Ok(body)
    }

    /// A request to `path`, with the token when there is one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach atalaya at {}", self.base))
    }
}

/// The error of an answer that is not a success: its status and the reason it gives.
fn refused(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let reason = body["error"].as_str().unwrap_or("no reason given");
    anyhow::anyhow!("atalaya answered {status}: {reason}")
}
