//! `xenc serve`: the command line of the HTTP server (the server itself is `xenc::serve`).

use clap::{ArgAction, Args};
use xenc::serve::{self as server, ServeOptions};
use xenc::Result;

use crate::ModelArgs;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on (0.0.0.0 to accept connections from other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Most documents or pairs in one request.
    #[arg(long, value_name = "N", default_value_t = ServeOptions::default().max_client_batch_size)]
    max_client_batch_size: usize,
    /// Most scoring requests in flight; beyond it requests are answered 429 at once.
    #[arg(long, value_name = "N", default_value_t = ServeOptions::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// Truncate over-long pairs when a request does not say (`truncate`); false: they are a 422.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    auto_truncate: bool,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "XENC_API_KEY", value_name = "KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = ServeOptions::default().payload_limit)]
    payload_limit: usize,
    /// The model's name in /info and /v1/rerank (default: the checkpoint directory's name).
    #[arg(long, value_name = "NAME")]
    model_id: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let model_id = args.model_id.clone().unwrap_or_else(|| {
        let dir = args
            .model
            .model
            .canonicalize()
            .unwrap_or(args.model.model.clone());
        dir.file_name()
            .map_or("xenc".into(), |n| n.to_string_lossy().into_owned())
    });
    let model = args.model.load()?;
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        max_client_batch_size: args.max_client_batch_size,
        max_concurrent_requests: args.max_concurrent_requests,
        auto_truncate: args.auto_truncate,
        api_key: args.api_key.filter(|k| !k.is_empty()),
        payload_limit: args.payload_limit,
        model_id,
        stop_on_signals: true,
        ..ServeOptions::default()
    };
    let device = model.device_name();
    let server = server::start(model, options)?;
    eprintln!(
        "xenc: serving on {device}, listening on http://{}",
        server.addr()
    );
    server.wait()?;
    eprintln!("xenc: stopped");
    Ok(())
}
