//! The `wsserver` binary: settings from a TOML file and the command line,
//! then serve until SIGINT/SIGTERM (or the admin API's shutdown), which
//! close every connection with 1001. SIGHUP reads the tenants again and
//! hot-swaps those whose component or configuration changed.

mod alloc;
mod cli;
mod demo;
mod dev;
mod plugin_args;
mod scaffold;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use cli::Cli;
use wsserver::admin::{AdminServer, AdminTarget};
use wsserver::cluster::Backplane;
use wsserver::config::{self, setting_error};
use wsserver::plugin::{PluginEngine, PluginRouter, PluginSpec, RuntimeOptions, SwapError};
use wsserver::tls::CertificateInfo;
use wsserver::{EchoHandler, Handler, IpMode, Settings, WsServer, setting_keys};

#[global_allocator]
static ALLOCATOR: alloc::SplitAllocator = alloc::SplitAllocator;

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: &str = "8080";

fn main() -> ExitCode {
    alloc::configure();
    let cli = Cli::parse();
    if cli.list_settings {
        let width = setting_keys()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, summary) in setting_keys() {
            println!("{name:<width$}  {summary}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(cli::Command::New {
        lang,
        name,
        dir,
        sdk,
    }) = &cli.command
    {
        return match scaffold::new_project(*lang, name, dir.clone(), sdk.clone()) {
            Ok(dir) => {
                println!(
                    "wrote {0}; build it with {0}/build.sh, test it with {0}/test.sh, \
                     or run `wsserver dev {0}`",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wsserver new: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mut launch = match build_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsserver: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(cli::Command::Dev { dir }) = &cli.command {
        match dev::start(dir) {
            Ok(tenant) => launch.tenants.push(tenant),
            Err(e) => {
                eprintln!("{e:#}");
                return ExitCode::from(2);
            }
        }
    }
    // Checked before anything starts; its link runs once the runtime does.
    let (backplane, link) = match launch.redis.as_deref().map(Backplane::new) {
        Some(Ok((backplane, link))) => (Some(backplane), Some(link)),
        Some(Err(e)) => {
            eprintln!("wsserver: {e}");
            return ExitCode::from(2);
        }
        None => (None, None),
    };
    if backplane.is_some() && cli.native_echo {
        tracing::warn!("cluster: the native echo has no topics to share");
    }
    let router = match build_router(&cli, launch.tenants, &launch.runtime, backplane.clone()) {
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
    // Thread-per-core: this thread's runtime serves connections (and the
    // admin API, the cluster link, reloads) beside io_threads - 1 more.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsserver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(link) = link {
        runtime.spawn(link.run());
    }
    let mut settings = launch.settings;
    settings.io_threads = cli.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let server = WsServer::with_settings(handler, settings);
    // Before anything listens: a refused admin address is a usage error.
    let admin = match launch.admin {
        Some(options) => {
            let target =
                AdminTarget::new(server.clone(), router.clone()).with_cluster(backplane.clone());
            match runtime.block_on(AdminServer::start(&options.listen, options.token, target)) {
                Ok(admin) => Some(admin),
                Err(e) => {
                    eprintln!("wsserver: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    // A browser opening / gets a page: say where.
    let page_on_root = router
        .as_ref()
        .is_some_and(|router| router.static_site("/", "").is_some());
    let reload = router.map(|router| Reload { router, cli });
    match runtime.block_on(serve(server, admin, reload, page_on_root)) {
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
    runtime: &config::RuntimeEntry,
    cluster: Option<Backplane>,
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
    let defaults = RuntimeOptions::default();
    let options = RuntimeOptions {
        executors: runtime.executors.unwrap_or(defaults.executors),
        max_instances: runtime.max_instances.unwrap_or(defaults.max_instances),
        inline_turns: runtime.inline_turns,
        ..defaults
    };
    let router = PluginRouter::start_in_cluster(&engine, specs, options, cluster)?;
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
    plugin_args::to_specs(entries, cli.static_dir.as_deref())
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
                Ok(outcome) if outcome.changed => {
                    tracing::info!("reload: tenant {tenant} now serves {outcome}")
                }
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

/// What the binary was asked to run.
struct Launch {
    settings: Settings,
    tenants: Vec<config::TenantEntry>,
    runtime: config::RuntimeEntry,
    admin: Option<AdminOptions>,
    /// The cluster's Redis URL.
    redis: Option<String>,
}

struct AdminOptions {
    listen: String,
    token: Option<String>,
}

/// Defaults, then the file, then --listen, then --set; the file's tenants;
/// the admin API from the file, then --admin and --admin-token (or its
/// environment variable); the cluster's Redis from the file, then --redis.
fn build_settings(cli: &Cli) -> anyhow::Result<Launch> {
    let mut tenants = Vec::new();
    let mut runtime = config::RuntimeEntry::default();
    let mut file_admin = config::AdminEntry::default();
    let mut file_redis = None;
    let mut settings = Settings::default();
    settings.set("LocalHost", DEFAULT_HOST)?;
    settings.set("LocalPort", DEFAULT_PORT)?;
    if let Some(path) = &cli.config {
        let file = config::load(path)?;
        if let Some(listen) = &file.listen {
            apply_listen(&mut settings, listen)?;
        }
        tenants = file.tenants.clone();
        runtime = file.runtime.clone();
        file_admin = file.admin.clone().unwrap_or_default();
        file_redis = file.cluster.as_ref().and_then(|c| c.redis.clone());
        for setting in &file.settings {
            settings.set(&setting.name, &setting.value).map_err(|e| {
                let (path, line) = (path.display(), setting.line);
                anyhow::anyhow!("{path}:{line}: {}", setting_error(e))
            })?;
        }
    }
    if let Some(listen) = &cli.listen {
        apply_listen(&mut settings, listen)?;
    }
    for item in &cli.set {
        config::apply_set(&mut settings, item)?;
    }
    let admin = cli
        .admin
        .clone()
        .or(file_admin.listen)
        .map(|listen| AdminOptions {
            listen,
            token: cli.admin_token.clone().or(file_admin.token),
        });
    Ok(Launch {
        settings,
        tenants,
        runtime,
        admin,
        redis: cli.redis.clone().or(file_redis),
    })
}

fn apply_listen(settings: &mut Settings, listen: &str) -> anyhow::Result<()> {
    let (host, port) = cli::split_listen(listen).map_err(anyhow::Error::msg)?;
    settings.set("LocalHost", &host)?;
    settings.set("LocalPort", &port.to_string())?;
    if host.contains(':') && settings.use_ipv6 == IpMode::V4Only {
        settings.set("UseIPv6", "1")?;
    }
    Ok(())
}

async fn serve(
    server: WsServer,
    admin: Option<AdminServer>,
    reload: Option<Reload>,
    page_on_root: bool,
) -> anyhow::Result<()> {
    // Installed before the ready line, so a signal sent as soon as it is
    // read is never fatal.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let scheme = if server.settings().tls.use_ssl {
        "wss"
    } else {
        "ws"
    };
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
        if let Some(admin) = &admin {
            writeln!(out, "admin on http://{}", admin.local_addr())?;
        }
        if page_on_root {
            let scheme = if scheme == "wss" { "https" } else { "http" };
            writeln!(out, "open {scheme}://{addr}/ in a browser")?;
        }
        out.flush()?;
    }
    wait_for_the_end(admin.as_ref(), reload.map(Arc::new), &mut hangup, async {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
    .await;
    tracing::info!("shutting down: closing connections with 1001");
    server.shutdown().await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    Ok(())
}

/// Serves until `signalled` or the admin API's shutdown; meanwhile each
/// SIGHUP reloads the tenants.
async fn wait_for_the_end(
    admin: Option<&AdminServer>,
    reload: Option<Arc<Reload>>,
    hangup: &mut tokio::signal::unix::Signal,
    signalled: impl std::future::Future<Output = ()>,
) {
    let admin_shutdown = async {
        match admin {
            Some(admin) => admin.shutdown_requested().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(admin_shutdown, signalled);
    loop {
        tokio::select! {
            _ = &mut signalled => return,
            _ = &mut admin_shutdown => {
                tracing::info!("shutdown asked for through the admin API");
                return;
            }
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
