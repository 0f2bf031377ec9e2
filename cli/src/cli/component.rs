//! `ks3-driver component save|push`: an embedded component (the KS3 driver, or the
//! `wasi:blobstore` provider) as a file, or as an OCI artifact in the CNCF TAG Runtime
//! "Wasm OCI Artifact layout" (see `oci.rs`).
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::oci;
use super::{CliError, Context};

#[derive(Debug, Args)]
pub struct ComponentArgs {
    #[command(subcommand)]
    pub command: ComponentCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Write an embedded component to FILE, to run or compose it elsewhere.
    #[command(
        after_help = "The `storage-driver` component is the KS3 driver this binary embeds: it \
                      exports `registry:storage-driver/driver@1.1.0` and \
                      `registry:storage-driver/fast-path@1.1.0` (world storage-driver-fast) and \
                      imports wasi:http, wasi:io, wasi:clocks, wasi:random and \
                      wasi:cli/environment.\n\
                      The `blobstore` component is the same driver as a wasi:blobstore \
                      provider: it exports `wasi:blobstore/blobstore@0.2.0-draft` (with \
                      container and types, and the wasi:io@0.2.2 streams its values use; world \
                      ks3:blobstore/provider), configured by REGISTRY_STORAGE_KS3_* in its \
                      environment; compose it with `wac plug` (see blobstore/README.md). It is \
                      not a storage driver: --component refuses it.\n\n\
                      Examples:\n  ks3-driver component save -o ks3-driver.wasm\n  \
                      ks3-driver component save --world blobstore -o ks3-blobstore.wasm"
    )]
    Save {
        /// Which component.
        #[arg(long, value_enum, default_value_t = World::StorageDriver)]
        world: World,
        /// Where to write it.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Publish the component to an OCI registry as a Wasm OCI artifact; prints REF@DIGEST.
    #[command(
        after_help = "The artifact follows the CNCF TAG Runtime Wasm OCI Artifact layout: an \
                      OCI image manifest, config `application/vnd.wasm.config.v0+json` (created, \
                      architecture wasm, os wasip2, layerDigests, and the component's exports and \
                      imports, read from the component), one `application/wasm` layer. Without \
                      --component it is the embedded KS3 driver (exports driver and fast-path), \
                      or with --world blobstore the embedded wasi:blobstore provider.\n\
                      Plain HTTP is used for loopback registries (127.0.0.0/8, ::1, localhost) \
                      and for those named by --insecure-registry; HTTPS for the others. \
                      Credentials come from the Docker config ($DOCKER_CONFIG/config.json, else \
                      ~/.docker/config.json: auths.<registry>.auth); anonymous otherwise.\n\
                      Run what was pushed with --component oci://REF@sha256:DIGEST.\n\n\
                      Examples:\n  ks3-driver component push 127.0.0.1:5000/drivers/ks3:1.0\n  \
                      ks3-driver component push --world blobstore \
                      127.0.0.1:5000/blobstore/ks3:1.0\n  \
                      ks3-driver --component other.wasm component push \
                      registry.example/drivers/other:1.0"
    )]
    Push {
        /// `HOST[:PORT]/REPOSITORY[:TAG]`.
        reference: String,
        /// Which embedded component (not with --component).
        #[arg(long, value_enum)]
        world: Option<World>,
    },
}

/// The components this binary can save or push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum World {
    /// The KS3 driver (exports driver and fast-path: world storage-driver-fast).
    StorageDriver,
    /// The KS3 driver as a wasi:blobstore@0.2.0-draft provider (world ks3:blobstore/provider).
    Blobstore,
}

impl World {
    /// The component's bytes, or why there are none.
    fn bytes(self) -> Result<&'static [u8], CliError> {
        match self {
            World::StorageDriver => Ok(ks3_driver_host::EMBEDDED_COMPONENT),
            World::Blobstore if ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT.is_empty() => {
                Err(CliError::Other(
                    "--world blobstore: this binary was built without the wasi:blobstore \
                     component (KS3_DRIVER_PREBUILT_COMPONENT without \
                     KS3_DRIVER_PREBUILT_BLOBSTORE)"
                        .into(),
                ))
            }
            World::Blobstore => Ok(ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT),
        }
    }
}

pub async fn run(ctx: &Context, args: &ComponentArgs) -> Result<(), CliError> {
    match &args.command {
        ComponentCommand::Save { world, output } => {
            if ctx.cli.component.is_some() {
                return Err(CliError::Usage(
                    "component save writes an embedded component; --component is not used \
                     with it"
                        .into(),
                ));
            }
            save(*world, output)
        }
        ComponentCommand::Push { reference, world } => {
            let wasm: std::borrow::Cow<'static, [u8]> = match (&ctx.cli.component, world) {
                (Some(_), Some(_)) => {
                    return Err(CliError::Usage(
                        "--world and --component both say what to push: use one".into(),
                    ))
                }
                (Some(path), None) => std::fs::read(path)
                    .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?
                    .into(),
                (None, w) => w.unwrap_or(World::StorageDriver).bytes()?.into(),
            };
            push(reference, &wasm, &ctx.cli.insecure_registries).await
        }
    }
}

fn save(world: World, output: &Path) -> Result<(), CliError> {
    let bytes = world.bytes()?;
    std::fs::write(output, bytes)
        .map_err(|e| CliError::Other(format!("{}: {e}", output.display())))?;
    let _ = writeln!(
        std::io::stderr(),
        "wrote {} bytes to {}",
        bytes.len(),
        output.display()
    );
    Ok(())
}

/// The component's export and import names, as wasmtime reads them.
fn interface_names(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), CliError> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, wasm)
        .map_err(|e| CliError::Other(format!("not a valid component: {e:#}")))?;
    let ty = component.component_type();
    let exports = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    let imports = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    Ok((exports, imports))
}

/// The world the component targets, from its exports: storage-driver-fast when it
/// exports fast-path beside driver, storage-driver when driver alone, the blobstore
/// provider's world (`blobstore/wit/world.wit`) when it exports exactly that world's
/// interfaces.
/// The contract's version is the one the driver interface carries (any 1.x).
fn target(exports: &[String]) -> Option<String> {
    let has = |n: &str| exports.iter().any(|e| e == n);
    let version_of = |iface: &str| {
        let prefix = format!("registry:storage-driver/{iface}@");
        exports
            .iter()
            .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
    };
    match (version_of("driver"), version_of("fast-path")) {
        (Some(v), Some(f)) if v == f => {
            return Some(format!("registry:storage-driver/storage-driver-fast@{v}"))
        }
        (Some(v), _) => return Some(format!("registry:storage-driver/storage-driver@{v}")),
        _ => {}
    }
    const BLOBSTORE_PROVIDER: [&str; 6] = [
        "wasi:io/error@0.2.2",
        "wasi:io/poll@0.2.2",
        "wasi:io/streams@0.2.2",
        "wasi:blobstore/types@0.2.0-draft",
        "wasi:blobstore/container@0.2.0-draft",
        "wasi:blobstore/blobstore@0.2.0-draft",
    ];
    (exports.len() == BLOBSTORE_PROVIDER.len() && BLOBSTORE_PROVIDER.iter().all(|n| has(n)))
        .then(|| "ks3:blobstore/provider@0.1.0".to_string())
}

/// The config and manifest of the artifact whose one layer is `wasm`.
pub fn artifact(wasm: &[u8], created: &str) -> Result<(Vec<u8>, Vec<u8>), CliError> {
    let (exports, imports) = interface_names(wasm)?;
    let layer_digest = oci::digest_of(wasm);
    let config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {
            "exports": exports,
            "imports": imports,
            "target": target(&exports),
        },
    });
    let config = serde_json::to_vec(&config).map_err(|e| CliError::Other(e.to_string()))?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": oci::CONFIG_MEDIA_TYPE,
            "digest": oci::digest_of(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": oci::LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": wasm.len(),
        }],
        "annotations": {
            "org.opencontainers.image.created": created,
        },
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| CliError::Other(e.to_string()))?;
    Ok((config, manifest))
}

async fn push(text: &str, wasm: &[u8], insecure: &[String]) -> Result<(), CliError> {
    let reference = oci::parse_reference(text).map_err(CliError::Usage)?;
    if reference.digest().is_some() {
        return Err(CliError::Usage(format!(
            "{text}: push to a tag (REPOSITORY:TAG), not to a digest: the digest is what the \
             push prints"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (config, manifest) = artifact(wasm, &ks3_proto::date::rfc3339(now))?;
    let client = oci::client_for(&reference, insecure);
    let auth = oci::auth_for(&reference).map_err(CliError::Other)?;
    let failed = |what: &str, e: oci_client::errors::OciDistributionError| {
        CliError::Other(format!("push {text}: {what}: {e}"))
    };
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    client
        .push_blob(&reference, wasm.to_vec(), &oci::digest_of(wasm))
        .await
        .map_err(|e| failed("the component", e))?;
    client
        .push_blob(&reference, config.clone(), &oci::digest_of(&config))
        .await
        .map_err(|e| failed("the config", e))?;
    client
        .push_manifest_raw(
            &reference,
            manifest.clone(),
            http::HeaderValue::from_static(oci::MANIFEST_MEDIA_TYPE),
        )
        .await
        .map_err(|e| failed("the manifest", e))?;
    let _ = writeln!(
        std::io::stdout(),
        "{}/{}@{}",
        reference.registry(),
        reference.repository(),
        oci::digest_of(&manifest)
    );
    Ok(())
}
