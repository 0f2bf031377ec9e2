//! The driver's parameters: one table, one reader, one parser, one place for validation.
//!
//! [`params`] is the table and the rules every source follows; [`settings`] (native
//! only) is the one reader of parameters outside the component: a YAML file (or a
//! distribution config's `storage.ks3`), `REGISTRY_STORAGE_KS3_*` variables, `-p` flags
//! and the credential fallback, merged with the source of each value. The component
//! reads the environment the host gives it. Here a flat `name → value` map becomes a
//! validated [`Config`] or a [`ConfigError`] naming the parameter and what is allowed.
use std::collections::BTreeMap;

mod endpoint;
mod params;
#[cfg(not(target_arch = "wasm32"))]
pub mod settings;

pub use endpoint::{Endpoint, Scheme};
pub use params::*;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

pub use ks3_proto::limits::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
/// The largest `chunksize`: a part is buffered in the component's linear memory (a 32-bit
/// address space, and the host's memory limit is about twice the chunk), so 1 GiB rather
/// than KS3's 5 GB.
pub const MAX_CHUNK_SIZE: u64 = GIB;
/// Largest `uploadconcurrency`.
pub const MAX_UPLOAD_CONCURRENCY: u64 = 64;

/// Regions KS3 documents (current and legacy). Any other region needs `regionendpoint`.
pub const KNOWN_REGIONS: &[&str] = &[
    "ks3-cn-beijing",
    "ks3-cn-shanghai",
    "ks3-cn-guangzhou",
    "ks3-cn-hk-1",
    "ks3-cn-qingyang",
    "ks3-rus",
    "ks3-sgp",
    "ks3-jr-beijing",
    "ks3-jr-shanghai",
    "ks3-gov-beijing",
    "ks3-cn-hangzhou",
    "ks3-cn-qingdao",
    "ks3-us-west-1",
    "kss",
];

pub use ks3_proto::names::{CANNED_ACLS as OBJECT_ACLS, STORAGE_CLASSES};
pub use ks3_proto::sign_v4::{SigningScheme, V4Namespace};

/// Credentials are held as [`Secret`]s (`Debug` masks them).
pub use ks3_proto::Secret;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub access_key: Secret,
    pub secret_key: Secret,
    pub region: String,
    pub bucket: String,
    pub endpoint: Endpoint,
    pub encrypt: bool,
    pub chunk_size: u64,
    /// `uploadconcurrency`: a writer's parts in flight at once, as configured (see
    /// [`Config::parts_in_flight`] for what the address space allows).
    pub upload_concurrency: u32,
    /// Normalised key prefix: no leading or trailing `/`; empty for the bucket root.
    pub root_directory: String,
    pub multipart_copy_threshold: u64,
    pub multipart_copy_chunk_size: u64,
    pub multipart_copy_max_concurrency: u32,
    pub object_acl: String,
    pub storage_class: Option<String>,
    pub max_retries: u32,
    pub request_timeout_secs: u64,
    pub ca_file: Option<String>,
    /// `signatureversion`: how every request and presigned URL is signed.
    pub signing: SigningScheme,
    /// The region name of V4 scopes: `v4region`, else the one KS3's table gives `region`.
    /// `None` only when neither exists, which V2 does not need (V4 configurations without
    /// one are refused).
    pub v4_region: Option<String>,
}

impl Config {
    /// Parts a writer keeps in flight at once: `uploadconcurrency`, lowered as needed so
    /// that the parts in flight, the part being filled and a copy of it (the saved tail)
    /// fit the component's 4 GiB address space with room to spare
    /// (`(n + 2) × chunksize ≤ 4 GiB − 64 MiB`); at least one.
    pub fn parts_in_flight(&self) -> usize {
        let room = (4 * GIB - 64 * MIB) / self.chunk_size.max(1);
        let fits = room.saturating_sub(2).max(1);
        usize::try_from(u64::from(self.upload_concurrency).min(fits)).unwrap_or(1)
    }

    /// The V4 namespace requests are signed in; `None` for V2.
    pub fn signing_namespace(&self) -> Option<V4Namespace> {
        match self.signing {
            SigningScheme::V2 => None,
            SigningScheme::V4(ns) => Some(ns),
        }
    }

    /// Parses `params`; `env` supplies the credential fallbacks.
    pub fn from_params(
        params: &Params,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        for name in params.keys() {
            // An error names its parameter; a nameless one is named by what is wrong.
            if name.trim().is_empty() {
                return Err(ConfigError::new(
                    "(empty name)",
                    "a parameter has an empty name",
                ));
            }
            if param_spec(name).is_none() {
                let known: Vec<_> = PARAMETERS.iter().map(|p| p.name).collect();
                return Err(ConfigError::new(
                    name,
                    format!(
                        "unknown parameter; known parameters are {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let get = |name: &str| -> Option<&str> {
            params
                .get(name)
                .map(|v| v.as_str())
                .or_else(|| param_spec(name).and_then(|p| p.default))
        };
        let non_empty = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());

        let access_key = credential(get("accesskey"), ENV_ACCESS_KEY, &env);
        let secret_key = credential(get("secretkey"), ENV_SECRET_KEY, &env);
        let access_key = access_key.ok_or_else(|| {
            ConfigError::new(
                "accesskey",
                format!("required: set it, or set {ENV_ACCESS_KEY}"),
            )
        })?;
        let secret_key = secret_key.ok_or_else(|| {
            ConfigError::new(
                "secretkey",
                format!("required: set it, or set {ENV_SECRET_KEY}"),
            )
        })?;

        let bucket = non_empty("bucket").ok_or_else(|| {
            ConfigError::new("bucket", "required: the name of an existing KS3 bucket")
        })?;
        validate_bucket(bucket)?;

        let region_endpoint = non_empty("regionendpoint");
        let region = non_empty("region")
            .ok_or_else(|| ConfigError::new("region", "required, e.g. ks3-cn-beijing"))?;
        validate_region(region, region_endpoint.is_some())?;

        let internal = parse_bool("internal", get("internal"))?;
        let secure = parse_bool("secure", get("secure"))?;
        let force_path_style = parse_bool("forcepathstyle", get("forcepathstyle"))?;
        let endpoint = endpoint::endpoint(
            bucket,
            region,
            region_endpoint,
            internal,
            secure,
            force_path_style,
        )?;

        let chunk_size = parse_u64("chunksize", get("chunksize"), MIN_PART_SIZE, MAX_CHUNK_SIZE)?;
        let upload_concurrency = parse_u64(
            "uploadconcurrency",
            get("uploadconcurrency"),
            1,
            MAX_UPLOAD_CONCURRENCY,
        )? as u32;
        let multipart_copy_threshold = parse_u64(
            "multipartcopythresholdsize",
            get("multipartcopythresholdsize"),
            0,
            MAX_PART_SIZE,
        )?;
        let multipart_copy_chunk_size = parse_u64(
            "multipartcopychunksize",
            get("multipartcopychunksize"),
            MIN_PART_SIZE,
            MAX_PART_SIZE,
        )?;
        let multipart_copy_max_concurrency = parse_u64(
            "multipartcopymaxconcurrency",
            get("multipartcopymaxconcurrency"),
            1,
            1000,
        )? as u32;
        let max_retries = parse_u64("maxretries", get("maxretries"), 0, 20)? as u32;
        let request_timeout_secs = parse_u64("requesttimeout", get("requesttimeout"), 1, 3600)?;

        let object_acl = get("objectacl")
            .unwrap_or("private")
            .trim()
            .to_ascii_lowercase();
        if !OBJECT_ACLS.contains(&object_acl.as_str()) {
            return Err(ConfigError::new(
                "objectacl",
                format!("`{object_acl}` is not one of {}", OBJECT_ACLS.join(", ")),
            ));
        }
        let storage_class = match non_empty("storageclass").map(|s| s.to_ascii_uppercase()) {
            None => None,
            Some(s) if s == "NONE" => None,
            Some(s) if STORAGE_CLASSES.contains(&s.as_str()) => Some(s),
            Some(s) => {
                return Err(ConfigError::new(
                    "storageclass",
                    format!("`{s}` is not one of NONE, {}", STORAGE_CLASSES.join(", ")),
                ))
            }
        };
        let root_directory = normalize_root(get("rootdirectory").unwrap_or(""))?;
        let encrypt = parse_bool("encrypt", get("encrypt"))?;
        let (signing, v4_region) = signing(region, get("signatureversion"), non_empty("v4region"))?;

        Ok(Config {
            access_key: Secret::new(access_key),
            secret_key: Secret::new(secret_key),
            region: region.to_string(),
            bucket: bucket.to_string(),
            endpoint,
            encrypt,
            chunk_size,
            upload_concurrency,
            root_directory,
            multipart_copy_threshold,
            multipart_copy_chunk_size,
            multipart_copy_max_concurrency,
            object_acl,
            storage_class,
            max_retries,
            request_timeout_secs,
            ca_file: non_empty("cafile").map(str::to_string),
            signing,
            v4_region,
        })
    }

    /// Reads `REGISTRY_STORAGE_KS3_*` from `vars`, the way the component reads its
    /// environment. No credential fallback here: the host resolved it before writing the
    /// component's environment, which carries the credentials themselves.
    pub fn from_env_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        Config::from_params(&params_from_env(&vars), |_| None)
    }
}

fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, ConfigError> {
    // strconv.ParseBool's spellings, as distribution accepts them.
    match v.map(str::trim).unwrap_or("false") {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        other => Err(ConfigError::new(
            name,
            format!("`{other}` is not a boolean (true or false)"),
        )),
    }
}

fn parse_u64(name: &str, v: Option<&str>, min: u64, max: u64) -> Result<u64, ConfigError> {
    let raw = v.map(str::trim).unwrap_or("");
    let n: u64 = raw.parse().map_err(|_| {
        ConfigError::new(
            name,
            format!("`{raw}` is not a whole number (allowed: {min} to {max})"),
        )
    })?;
    if n < min || n > max {
        return Err(ConfigError::new(
            name,
            format!("{n} is out of range (allowed: {min} to {max})"),
        ));
    }
    Ok(n)
}

fn validate_bucket(b: &str) -> Result<(), ConfigError> {
    ks3_proto::names::check_bucket_name(b).map_err(|why| {
        ConfigError::new(
            "bucket",
            format!("`{b}` is not a valid KS3 bucket name: {why}"),
        )
    })
}

fn validate_region(r: &str, has_endpoint: bool) -> Result<(), ConfigError> {
    if KNOWN_REGIONS.contains(&r) {
        return Ok(());
    }
    let well_formed = r
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-');
    if has_endpoint && well_formed {
        return Ok(());
    }
    Err(ConfigError::new(
        "region",
        format!(
            "`{r}` is not a KS3 region; known regions are {} (set regionendpoint to use another)",
            KNOWN_REGIONS.join(", ")
        ),
    ))
}

/// `signatureversion` and the V4 region name it needs: `v4region` when set (checked to be
/// placeable in a credential scope), else KS3's name for `region`. A V4 scheme without
/// either is an error naming both parameters, since either one fixes it.
fn signing(
    region: &str,
    version: Option<&str>,
    v4region: Option<&str>,
) -> Result<(SigningScheme, Option<String>), ConfigError> {
    let raw = version.map(str::trim).unwrap_or("v2");
    let scheme = SigningScheme::parse(raw).ok_or_else(|| {
        ConfigError::new(
            "signatureversion",
            format!("`{raw}` is not one of {}", SigningScheme::NAMES.join(", ")),
        )
    })?;
    let v4_region = match v4region {
        Some(r) => {
            // The name goes into `Credential=AK/date/REGION/…`: no separators, no spaces.
            let ok = r.len() <= 64
                && r.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
            if !ok {
                return Err(ConfigError::new(
                    "v4region",
                    format!("`{r}` is not a V4 region name (letters, digits, `_`, `-`, `.`; at most 64)"),
                ));
            }
            Some(r.to_string())
        }
        None => ks3_proto::sign_v4::v4_region(region).map(str::to_string),
    };
    if matches!(scheme, SigningScheme::V4(_)) && v4_region.is_none() {
        return Err(ConfigError::new(
            "v4region",
            format!(
                "signatureversion `{}` needs the V4 region name, and region `{region}` is not in \
                 KS3's table of V4 names: set v4region (e.g. BEIJING) or use a known region",
                scheme.name()
            ),
        ));
    }
    Ok((scheme, v4_region))
}

fn normalize_root(root: &str) -> Result<String, ConfigError> {
    let trimmed = root.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for comp in trimmed.split('/') {
        if comp.is_empty()
            || !comp
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(ConfigError::new(
                "rootdirectory",
                format!("`{root}`: components must be non-empty and use only A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("accesskey", "AK"),
            ("secretkey", "SK"),
            ("region", "ks3-cn-beijing"),
            ("bucket", "registry-bucket"),
        ]
    }

    fn parse(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut kv = base();
        kv.extend_from_slice(extra);
        Config::from_params(&params(&kv), |_| None)
    }

    #[test]
    fn a_nameless_parameter_is_refused_by_name() {
        let mut p = params(&base());
        p.insert(" ".into(), "x".into());
        let e = Config::from_params(&p, |_| None).unwrap_err();
        assert_eq!(e.parameter, "(empty name)");
        assert!(e.to_string().contains("empty name"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "https://registry-bucket.ks3-cn-beijing.ksyuncs.com"
        );
        assert!(!c.endpoint.path_style);
        assert_eq!(c.chunk_size, 10 * MIB);
        assert_eq!(c.multipart_copy_threshold, 32 * MIB);
        assert_eq!(c.object_acl, "private");
        assert_eq!(c.storage_class, None);
        assert!(!c.encrypt);
        assert_eq!(c.root_directory, "");
        assert_eq!((c.upload_concurrency, c.parts_in_flight()), (4, 4));
    }

    #[test]
    fn parts_in_flight_fit_the_address_space() {
        let c = parse(&[("uploadconcurrency", "64")]).unwrap();
        assert_eq!(c.parts_in_flight(), 64);
        // 512 MiB parts: (n + 2) × 512 MiB ≤ 4 GiB − 64 MiB leaves 5 in flight.
        let c = parse(&[("uploadconcurrency", "64"), ("chunksize", "536870912")]).unwrap();
        assert_eq!(c.parts_in_flight(), 5);
        let c = parse(&[("chunksize", "1073741824")]).unwrap();
        assert_eq!(c.parts_in_flight(), 1);
        let c = parse(&[("uploadconcurrency", "1")]).unwrap();
        assert_eq!(c.parts_in_flight(), 1);
    }

    #[test]
    fn endpoints() {
        let c = parse(&[("internal", "true"), ("secure", "false")]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "http://registry-bucket.ks3-cn-beijing-internal.ksyuncs.com"
        );
        let c = parse(&[("regionendpoint", "127.0.0.1:9000"), ("secure", "false")]).unwrap();
        assert_eq!(c.endpoint.base_url(), "http://127.0.0.1:9000");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "http://localhost:9000")]).unwrap();
        assert_eq!(c.endpoint.base_url(), "http://localhost:9000");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "ks3-cn-beijing.ksyun.com")]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "https://registry-bucket.ks3-cn-beijing.ksyun.com"
        );
        let c = parse(&[
            ("regionendpoint", "https://s3.example.com:8443/"),
            ("forcepathstyle", "true"),
        ])
        .unwrap();
        assert_eq!(c.endpoint.base_url(), "https://s3.example.com:8443");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "https://ks3.example.com:443")]).unwrap();
        assert_eq!(c.endpoint.authority(), "registry-bucket.ks3.example.com");
        for bad in ["ftp://x", "http://x/path", "x:99999", "x:0", "", "http://"] {
            if bad.is_empty() {
                continue;
            }
            let e = parse(&[("regionendpoint", bad)]).unwrap_err();
            assert_eq!(e.parameter, "regionendpoint", "{bad}");
        }
    }

    #[test]
    fn userinfo_in_the_endpoint_is_refused_without_echo() {
        for bad in [
            "https://AKLTuser:hunter2secret@ks3.example.com",
            "hunter2secret@ks3.example.com:443",
            "ftp://u:hunter2secret@x",
            "http://a:hunter2secret@b@ks3.example.com/",
        ] {
            let e = parse(&[("regionendpoint", bad)]).unwrap_err();
            assert_eq!(e.parameter, "regionendpoint", "{bad}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2secret"), "{shown}");
            assert!(shown.contains("credentials"), "{shown}");
        }
    }

    #[test]
    fn rejects_bad_values_naming_the_parameter() {
        for (k, v) in [
            ("chunksize", "5242879"),
            ("chunksize", "1073741825"),
            ("chunksize", "5368709120"),
            ("chunksize", "18446744073709551616"),
            ("multipartcopychunksize", "5000000001"),
            ("multipartcopythresholdsize", "5000000001"),
            ("chunksize", "ten"),
            ("chunksize", "-1"),
            ("secure", "maybe"),
            ("bucket", "Bad_Bucket"),
            ("bucket", "ab"),
            ("bucket", "kss-bucket"),
            ("bucket", "192.168.1.1"),
            ("region", "mars-1"),
            ("objectacl", "everyone"),
            ("storageclass", "GOLD"),
            ("rootdirectory", "a//b"),
            ("rootdirectory", "a b"),
            ("multipartcopymaxconcurrency", "0"),
            ("uploadconcurrency", "0"),
            ("uploadconcurrency", "65"),
            ("uploadconcurrency", "four"),
            ("signatureversion", "v3"),
            ("v4region", "BEI JING"),
            ("v4region", "a/b"),
            ("nonsense", "1"),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert_eq!(e.parameter, k, "{k}={v}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn credentials_fall_back_to_env() {
        let p = params(&[
            ("accesskey", ""),
            ("secretkey", ""),
            ("region", "ks3-cn-beijing"),
            ("bucket", "abc"),
        ]);
        let c = Config::from_params(&p, |k| match k {
            ENV_ACCESS_KEY => Some("envak".into()),
            ENV_SECRET_KEY => Some("envsk".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.access_key.expose(), "envak");
        assert_eq!(c.secret_key.expose(), "envsk");
        let e = Config::from_params(&p, |_| None).unwrap_err();
        assert_eq!(e.parameter, "accesskey");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = parse(&[]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("\"SK\"") && !dbg.contains("\"AK\""), "{dbg}");
    }

    #[test]
    fn env_round_trip() {
        let p = params(&base());
        let env = params_to_env(&p);
        assert!(env.iter().any(|(k, _)| k == "REGISTRY_STORAGE_KS3_BUCKET"));
        let c = Config::from_env_vars(env).unwrap();
        assert_eq!(c.bucket, "registry-bucket");
    }

    #[test]
    fn signature_version_and_v4_region() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.signing, SigningScheme::V2);
        assert_eq!(c.v4_region.as_deref(), Some("BEIJING"));
        let c = parse(&[("signatureversion", "AWS4")]).unwrap();
        assert_eq!(c.signing, SigningScheme::V4(V4Namespace::Aws4));
        let c = parse(&[("signatureversion", "v4"), ("v4region", "MARS")]).unwrap();
        assert_eq!(c.signing, SigningScheme::V4(V4Namespace::Kss4));
        assert_eq!(c.v4_region.as_deref(), Some("MARS"));
        // A region outside the table: fine for V2, an error naming both fixes for V4.
        let other = [
            ("region", "ks3-cn-mars"),
            ("regionendpoint", "127.0.0.1:9000"),
        ];
        assert_eq!(parse(&other).unwrap().v4_region, None);
        for v in ["v4", "aws4"] {
            let mut kv = other.to_vec();
            kv.push(("signatureversion", v));
            let e = parse(&kv).unwrap_err();
            assert_eq!(e.parameter, "v4region");
            assert!(e.message.contains("region `ks3-cn-mars`"), "{e}");
            kv.push(("v4region", "MARS"));
            assert_eq!(parse(&kv).unwrap().v4_region.as_deref(), Some("MARS"));
        }
    }

    #[test]
    fn root_directory_is_normalised() {
        assert_eq!(
            parse(&[("rootdirectory", "/a/b/")]).unwrap().root_directory,
            "a/b"
        );
        assert_eq!(parse(&[("rootdirectory", "/")]).unwrap().root_directory, "");
    }
}
