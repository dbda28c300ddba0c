//! The kube client configuration: a kubeconfig file, or the pod's service account.

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubernetesError;
use super::config::KubernetesConfig;

/// The client configuration `config` asks for:
/// - `kubeconfig: FILE` — that file (its current context, or `context`);
/// - else, in a pod (`KUBERNETES_SERVICE_HOST` set) without `context` — the service account;
/// - else `$KUBECONFIG` or `~/.kube/config` (falling back to in-cluster, as kubectl does).
pub(crate) async fn load(config: &KubernetesConfig) -> Result<Config, KubernetesError> {
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let failed = |from: String| {
        move |error: &dyn std::fmt::Display| KubernetesError::Kubeconfig {
            from,
            message: error.to_string(),
        }
    };
    if let Some(path) = &config.kubeconfig {
        let from = path.display().to_string();
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| failed(from.clone())(&e))?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| failed(from)(&e));
    }
    if config.context.is_some() {
        return Config::from_kubeconfig(&options)
            .await
            .map_err(|e| failed("$KUBECONFIG or ~/.kube/config".to_owned())(&e));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Config::incluster().map_err(|e| failed("the pod's service account".to_owned())(&e));
    }
    Config::infer().await.map_err(|e| {
        failed("$KUBECONFIG, ~/.kube/config or the pod's service account".to_owned())(&e)
    })
}
