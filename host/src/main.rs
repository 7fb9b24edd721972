//! The `wsserver` binary: settings from a TOML file and the command line,
//! then serve until SIGINT/SIGTERM, which close every connection with 1001.
//! SIGHUP reads the tenants again and hot-swaps those whose component or
//! configuration changed.

mod cli;
mod config;
mod plugin_args;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use cli::Cli;
use wsserver::net::tls::CertificateInfo;
use wsserver::plugin::{PluginEngine, PluginRouter, PluginSpec, SwapError};
use wsserver::server::echo::EchoHandler;
use wsserver::server::settings::all_keys;
use wsserver::{Handler, Settings, WsServer};

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: &str = "8080";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_settings {
        let width = all_keys().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, summary) in all_keys() {
            println!("{name:<width$}  {summary}");
        }
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (settings, tenants) = match build_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsserver: {e:#}");
            return ExitCode::from(2);
        }
    };
    let router = match build_router(&cli, tenants) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsserver: {e:#}");
            return ExitCode::from(2);
        }
    };
    let handler: Arc<dyn Handler> = match &router {
        Some(router) => router.clone(),
        None => Arc::new(EchoHandler::new()),
    };
    // Each connection is a file descriptor: use all the process may have.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.into());
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsserver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reload = router.map(|router| Reload { router, cli });
    match runtime.block_on(serve(settings, handler, reload)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The tenants (the built-in echo when none is given), or None for the
/// native echo.
fn build_router(
    cli: &Cli,
    from_file: Vec<config::TenantEntry>,
) -> anyhow::Result<Option<Arc<PluginRouter>>> {
    if cli.native_echo {
        return Ok(None);
    }
    let specs = tenant_specs(cli, from_file)?;
    let cache = cli
        .plugin_cache
        .clone()
        .or_else(PluginEngine::default_cache_dir);
    let engine = PluginEngine::new(cache)?;
    let router = PluginRouter::start(&engine, specs)?;
    for (route, plugin) in router.describe() {
        tracing::info!("plugin {plugin} serves {route}");
    }
    Ok(Some(Arc::new(router)))
}

/// The file's tenants, then those of --plugin flags, components read.
fn tenant_specs(
    cli: &Cli,
    mut entries: Vec<config::TenantEntry>,
) -> anyhow::Result<Vec<PluginSpec>> {
    for flag in &cli.plugins {
        entries.push(plugin_args::from_flag(flag)?);
    }
    plugin_args::to_specs(entries)
}

/// What SIGHUP needs: the running tenants and where they were declared.
struct Reload {
    router: Arc<PluginRouter>,
    cli: Cli,
}

impl Reload {
    /// Reads the configuration file and every component again, and swaps
    /// the tenants that changed. Blocks (compiling takes time).
    fn run(&self) {
        let entries = match &self.cli.config {
            Some(path) => match config::load(path) {
                Ok(file) => file.tenants,
                Err(e) => {
                    tracing::error!("reload: {e:#}; nothing changed");
                    return;
                }
            },
            None => Vec::new(),
        };
        let specs = match tenant_specs(&self.cli, entries) {
            Ok(specs) => specs,
            Err(e) => {
                tracing::error!("reload: {e:#}; nothing changed");
                return;
            }
        };
        for (tenant, result) in self.router.reconfigure(specs) {
            match result {
                Ok(outcome) if outcome.changed => tracing::info!(
                    "reload: tenant {tenant} now serves {}{}",
                    outcome.version,
                    if outcome.state_carried {
                        " (state carried over by lifecycle)"
                    } else {
                        " (started fresh; told of each open connection)"
                    }
                ),
                Ok(_) => tracing::debug!("reload: tenant {tenant} unchanged"),
                Err(SwapError::UnknownTenant(_)) => {
                    tracing::warn!("reload: tenant {tenant} is new; it needs a restart")
                }
                Err(e) => {
                    tracing::error!("reload: {e}; tenant {tenant} keeps its running version")
                }
            }
        }
    }
}

/// Defaults, then the file, then --listen, then --set; and the file's
/// tenants.
fn build_settings(cli: &Cli) -> anyhow::Result<(Settings, Vec<config::TenantEntry>)> {
    let mut plugins = Vec::new();
    let mut settings = Settings::default();
    settings.set("LocalHost", DEFAULT_HOST)?;
    settings.set("LocalPort", DEFAULT_PORT)?;
    if let Some(path) = &cli.config {
        let file = config::load(path)?;
        if let Some(listen) = &file.listen {
            apply_listen(&mut settings, listen)?;
        }
        plugins = file.tenants.clone();
        for (key, value) in &file.settings {
            settings
                .set(key, value)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    if let Some(listen) = &cli.listen {
        apply_listen(&mut settings, listen)?;
    }
    for item in &cli.set {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set {item:?}: expected Key=Value"))?;
        settings
            .set(key.trim(), value)
            .map_err(|e| anyhow::anyhow!("--set {item}: {e}"))?;
    }
    Ok((settings, plugins))
}

fn apply_listen(settings: &mut Settings, listen: &str) -> anyhow::Result<()> {
    let (host, port) = cli::split_listen(listen).map_err(anyhow::Error::msg)?;
    settings.set("LocalHost", &host)?;
    settings.set("LocalPort", &port.to_string())?;
    if host.contains(':') && settings.use_ipv6 == wsserver::server::IpMode::V4Only {
        settings.set("UseIPv6", "1")?;
    }
    Ok(())
}

async fn serve(
    settings: Settings,
    handler: Arc<dyn Handler>,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    // Installed before the ready line, so a signal sent as soon as it is
    // read is never fatal.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let reload = reload.map(Arc::new);
    let scheme = if settings.tls.use_ssl { "wss" } else { "ws" };
    let server = WsServer::with_settings(handler, settings);
    server.start_listening().await?;
    let addr = server
        .local_addr()
        .ok_or_else(|| anyhow::anyhow!("listener stopped at once"))?;
    if let Some(cert) = server.ssl_cert() {
        log_certificate("default", &cert);
    }
    for (host, cert) in server.ssl_sni_certs() {
        log_certificate(&host, &cert);
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => match &reload {
                Some(reload) => {
                    tracing::info!("SIGHUP: reloading the tenants");
                    let reload = reload.clone();
                    // Swaps compile and wait for the plugins' actors.
                    let _ = tokio::task::spawn_blocking(move || reload.run()).await;
                }
                None => tracing::info!("SIGHUP: the native echo has nothing to reload"),
            },
        }
    }
    tracing::info!("shutting down: closing connections with 1001");
    server.shutdown().await;
    Ok(())
}

/// One line per served certificate, so an operator sees what is served and
/// until when.
fn log_certificate(host: &str, cert: &CertificateInfo) {
    tracing::info!(
        "TLS certificate for {host}: subject \"{}\", expires {} UTC, SHA-256 {}",
        cert.subject,
        cert.expiration_date,
        cert.fingerprint_sha256
    );
}
