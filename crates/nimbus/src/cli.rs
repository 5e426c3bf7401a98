//! The command line, declared with clap. `nimbus --help` is generated from these docs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// nimbus: a self-hosted serverless ML platform in one binary.
#[derive(Parser, Debug)]
#[command(name = "nimbus", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Server URL [default: $NIMBUS_ENDPOINT, else DATA_DIR/endpoint, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "NIMBUS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Profile of ~/.aws/credentials to sign with (else $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, else DATA_DIR/credentials)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Output format of listings and descriptions
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Data directory whose credentials and endpoint the CLI uses by default
    #[arg(long, global = true, env = "NIMBUS_DATA_DIR", default_value = ".nimbus")]
    pub data_dir: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: admin API, registry and store, on one listener
    Serve(ServeArgs),
    /// Show who the CLI's credentials belong to
    Whoami,
    /// Buckets and objects: cp, ls, rm, mb, rb
    #[command(subcommand)]
    Store(StoreCommand),
    /// The model registry: groups, versions, approval, aliases
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Make the server match a project file (nimbus.toml): uploads, model groups, pipelines
    Apply {
        /// A nimbus.toml, or a directory holding one
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Only print what would change
        #[arg(long)]
        dry_run: bool,
    },
    /// Training pipelines: list, run, executions, describe
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
    /// Functions: list, describe, deploy code, invoke
    #[command(subcommand)]
    Functions(FunctionsCommand),
    /// APIs of the gateway: list, describe
    #[command(subcommand)]
    Apis(ApisCommand),
    /// Recent log lines of a function (START/END/REPORT) or, with --api, an API's access log
    Logs {
        /// Function name, NAME:VERSION for a published version's log (or API name with --api)
        name: String,
        /// Read the access log of the API called NAME
        #[arg(long)]
        api: bool,
        /// Only lines newer than this: 30s, 10m, 2h, 1d
        #[arg(long)]
        since: Option<String>,
        /// Only lines containing this text
        #[arg(long)]
        filter: Option<String>,
        /// Keep printing new lines until interrupted
        #[arg(long)]
        follow: bool,
    },
    /// Invocation counters per function and response counts per API route (from /metrics)
    Metrics {
        /// Only this function
        #[arg(long)]
        function: Option<String>,
        /// Only this API
        #[arg(long)]
        api: Option<String>,
    },
    /// Administration of a data directory, with the server stopped
    #[command(subcommand)]
    Admin(AdminCommand),
    /// IAM: users, access keys, groups, roles, managed and inline policies
    #[command(subcommand)]
    Iam(IamCommand),
    /// API keys of usage plans: create (value shown once), list, enable, disable, delete, usage
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The OAuth2 authorization server: app clients, resource servers, signing keys
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Start an embedded server, apply DIR/nimbus.toml, train and deploy, and show a prediction
    Up {
        /// A project directory (or its nimbus.toml)
        #[arg(default_value = ".")]
        path: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum FunctionsCommand {
    /// List functions with their state (warm or cold) and loaded version
    List,
    /// A function's settings and state
    Describe { name: String },
    /// Upload a process function's code (a directory, zipped, or a .zip) and point the function at it
    Deploy {
        name: String,
        /// The code: a directory (zipped the same way every time, so unchanged code is not uploaded
        /// again) or a .zip file
        #[arg(long, value_name = "DIR|ZIP")]
        code: PathBuf,
    },
    /// Invoke a function through the Invoke API and print its answer
    Invoke {
        name: String,
        /// The event: JSON text, or @FILE
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Version or alias ($LATEST)
        #[arg(long)]
        qualifier: Option<String>,
        /// Also print the invocation's log lines
        #[arg(long)]
        log: bool,
        /// Queue the event and return at once (X-Amz-Invocation-Type: Event); failed attempts
        /// are retried, and what still fails is listed by `nimbus functions failures`
        #[arg(long = "async", conflicts_with = "log")]
        asynchronous: bool,
    },
    /// Asynchronous events that failed every attempt, with their last error
    Failures {
        name: String,
        /// At most this many (newest)
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Freeze the function's current declaration as its next version (a model function's
    /// version keeps serving the model version its selector names now)
    Publish {
        name: String,
        /// What this version is
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The function's published versions, with $LATEST first
    Versions { name: String },
    /// Aliases of a function: set (with a weighted second version), list, delete
    #[command(subcommand)]
    Alias(AliasCommand),
}

#[derive(Subcommand, Debug)]
pub enum AliasCommand {
    /// Create or change an alias: it sends invocations to VERSION, and with --weight a share
    /// of them to another version
    Set {
        name: String,
        alias: String,
        /// $LATEST or a published version number
        version: String,
        /// Send this share of invocations to another published version, e.g. 4=0.1
        #[arg(long, value_name = "VERSION=WEIGHT")]
        weight: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The function's aliases and where they send invocations
    List { name: String },
    /// Delete an alias (refused while an API route names it)
    Delete { name: String, alias: String },
}

#[derive(Subcommand, Debug)]
pub enum IamCommand {
    /// Users: list, create, delete
    #[command(subcommand)]
    Users(IamUsersCommand),
    /// Access keys of a user: create (secret shown once), list, deactivate, activate, delete, rotate
    #[command(subcommand, name = "access-keys")]
    AccessKeys(AccessKeysCommand),
    /// Groups: list, create, delete, add-user, remove-user
    #[command(subcommand)]
    Groups(IamGroupsCommand),
    /// Roles: list, create, delete
    #[command(subcommand)]
    Roles(IamRolesCommand),
    /// Managed policies: list, get, put (validated), delete, attach, detach; inline: put-inline, delete-inline
    #[command(subcommand)]
    Policies(IamPoliciesCommand),
}

#[derive(Subcommand, Debug)]
pub enum IamUsersCommand {
    List,
    /// Create a user (it holds nothing until a policy is attached)
    Create {
        name: String,
        /// A tag (repeatable), the value of aws:PrincipalTag/KEY
        #[arg(long, value_name = "KEY=VALUE")]
        tag: Vec<String>,
    },
    /// Delete a user with its access keys and policies (refused from its next request on)
    Delete {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccessKeysCommand {
    /// List a user's access keys (never the secrets)
    List {
        user: String,
    },
    /// Create an access key; the secret is shown once
    Create {
        user: String,
    },
    /// Make a key Inactive: requests signed with it are refused from the next one on
    Deactivate {
        user: String,
        access_key_id: String,
    },
    /// Make a key Active again
    Activate {
        user: String,
        access_key_id: String,
    },
    Delete {
        user: String,
        access_key_id: String,
    },
    /// A new key for the user and the old one made Inactive, in one step
    Rotate {
        user: String,
        access_key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum IamGroupsCommand {
    List,
    Create {
        name: String,
    },
    Delete {
        name: String,
    },
    #[command(name = "add-user")]
    AddUser {
        group: String,
        user: String,
    },
    #[command(name = "remove-user")]
    RemoveUser {
        group: String,
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum IamRolesCommand {
    List,
    /// Create a role; FILE holds its trust policy (JSON, with Principal)
    Create {
        name: String,
        #[arg(long, value_name = "FILE")]
        trust_policy: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    Delete {
        name: String,
    },
}

/// Whom a policy is attached to.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct PolicyHolder {
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum IamPoliciesCommand {
    List,
    /// Print a managed policy's document
    Get {
        name: String,
    },
    /// Create or replace a managed policy from a JSON file (checked before it is stored)
    Put {
        name: String,
        /// The policy document (JSON), or - for standard input
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    Delete {
        name: String,
    },
    /// Attach a managed policy to a user, group or role
    Attach {
        name: String,
        #[command(flatten)]
        to: PolicyHolder,
    },
    /// Detach a managed policy
    Detach {
        name: String,
        #[command(flatten)]
        from: PolicyHolder,
    },
    /// Create or replace an inline policy of a user, group or role
    #[command(name = "put-inline")]
    PutInline {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        of: PolicyHolder,
    },
    #[command(name = "delete-inline")]
    DeleteInline {
        name: String,
        #[command(flatten)]
        of: PolicyHolder,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key; its value is shown once (send it as x-api-key)
    Create {
        name: String,
        #[arg(long)]
        usage_plan: Option<String>,
    },
    List,
    /// Refuse the key from the next request on
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Quota used and left in this period
    Usage {
        name: String,
    },
    /// Usage plans (declared in nimbus.toml under [usage_plans])
    Plans,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// App clients (client credentials): create (secret shown once), list, delete, rotate-secret
    #[command(subcommand)]
    Clients(AuthClientsCommand),
    /// Resource servers and their scopes
    #[command(name = "resource-servers")]
    ResourceServers,
    /// Make a new token-signing key; tokens signed by the old one stay valid until they expire
    #[command(name = "rotate-signing-key")]
    RotateSigningKey,
}

#[derive(Subcommand, Debug)]
pub enum AuthClientsCommand {
    List,
    /// Create (or update the scopes of) an app client; a new client's secret is shown once
    Create {
        name: String,
        /// An allowed scope, `resource/scope` (repeatable)
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        client_id: Option<String>,
    },
    Delete {
        name: String,
    },
    /// A new secret (shown once); the old one stops working
    #[command(name = "rotate-secret")]
    RotateSecret {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApisCommand {
    /// List APIs with their routes and stage URLs
    List,
    /// An API's routes, stages and URLs
    Describe { name: String },
}

#[derive(Subcommand, Debug)]
pub enum PipelinesCommand {
    /// List pipelines
    List,
    /// Start an execution: `run NAME --param max_depth=6 --wait`, or `run --retry EXECUTION`
    Run {
        name: Option<String>,
        /// Override a parameter (repeatable); the value is checked against the parameter's type
        #[arg(long, value_name = "KEY=VALUE")]
        param: Vec<String>,
        /// Follow the execution until it ends, showing each step, and print the evaluation
        #[arg(long)]
        wait: bool,
        /// Re-run a failed execution from its failed step
        #[arg(long, value_name = "EXECUTION")]
        retry: Option<String>,
    },
    /// Executions of a pipeline, newest first
    Executions { name: String },
    /// Steps, status, outputs and logs of one execution
    Describe { execution: String },
    /// Stop a running execution: its current step is killed; it can be retried
    Stop { execution: String },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listener address (port 0 picks a free port)
    #[arg(long, env = "NIMBUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Metadata database URL, e.g. postgres://user@host/db [default: SQLite in the data directory]
    #[arg(long, env = "NIMBUS_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Seconds a request's head (request line and headers) may take to arrive
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = seconds)]
    pub header_timeout: f64,
    /// Seconds a keep-alive connection may stay idle before it is closed
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = seconds)]
    pub idle_timeout: f64,
    /// Seconds a request's body may take to arrive, plus one per 64 KiB received (slower
    /// uploads get 408)
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = seconds)]
    pub body_timeout: f64,
    /// Connections served at once; more wait until one closes
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Answer unsigned requests to the local-emulator Invoke path from loopback addresses (as the
    /// Lambda runtime interface emulator does); behind a proxy on the same host that means everyone
    #[arg(long)]
    pub allow_unsigned_local_invoke: bool,
    /// Run pipeline `process` steps even when no sandbox (Landlock, or a separate uid as root) can
    /// keep them out of the data directory
    #[arg(long)]
    pub allow_unconfined_processes: bool,
    /// How `process` steps are kept out of the data directory: the strongest available (auto),
    /// or Landlock, or a separate unprivileged uid (as root)
    #[arg(long, value_enum, default_value = "auto", value_name = "KIND")]
    pub process_sandbox: ProcessSandbox,
    /// Region for ARNs and SigV4 scopes
    #[arg(long, env = "NIMBUS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id for ARNs
    #[arg(long, env = "NIMBUS_ACCOUNT", default_value = "000000000000")]
    pub account: String,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first); needs
    /// --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC; unencrypted)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The URL clients reach this server at (behind a proxy or DNS name); the OAuth2 token
    /// issuer (`iss`) and /.well-known/openid-configuration name it [default: the listener's URL]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// A number of seconds from 0.001 to 86400.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.001..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds from 0.001 to 86400")),
    }
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Recover a lost admin secret: make a new admin access key, retire the old ones, and write
    /// it to DATA_DIR/credentials (run it where the data directory is, with the server stopped)
    ResetKey {
        /// Metadata database URL, when the server uses one [default: SQLite in the data directory]
        #[arg(long, env = "NIMBUS_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Region of the key's profile
        #[arg(long, env = "NIMBUS_REGION", default_value = "us-east-1")]
        region: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy a file to or from the store: `cp FILE s3://b/k`, `cp s3://b/k FILE`, `cp s3://b/k s3://b2/k2`
    Cp {
        src: String,
        dst: String,
        /// Content type of an upload [default: from the file extension]
        #[arg(long)]
        content_type: Option<String>,
    },
    /// List buckets, or objects under `s3://bucket/prefix`
    Ls { target: Option<String> },
    /// Delete an object: `rm s3://bucket/key`
    Rm { target: String },
    /// Make a bucket: `mb s3://bucket`
    Mb { target: String },
    /// Remove an empty bucket: `rb s3://bucket`
    Rb { target: String },
    /// Check every object's bytes against its digest and look for files no object names
    Fsck {
        /// Remove orphan files and the records of damaged objects (never those of registered models)
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List model groups, or the versions of GROUP
    List {
        group: Option<String>,
        /// Only versions with this status (PendingManualApproval, Approved, Rejected)
        #[arg(long)]
        status: Option<String>,
    },
    /// Create a model group
    Create {
        group: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Describe a group, or a version: GROUP, GROUP/VERSION, GROUP/@ALIAS, GROUP/latest-approved
    Describe { target: String, version: Option<String> },
    /// Approve a version: GROUP/VERSION (or GROUP VERSION)
    Approve {
        group: String,
        version: Option<String>,
        /// Why it is approved (kept with the approval)
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Reject a version: GROUP/VERSION (or GROUP VERSION)
    Reject {
        group: String,
        version: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Point ALIAS at VERSION (or remove it with --delete)
    Alias {
        group: String,
        alias: String,
        version: Option<String>,
        #[arg(long)]
        delete: bool,
    },
    /// Show which version a selector names now (latest-approved, @alias, N)
    Resolve { group: String, selector: String },
    /// Import a model file as the next version of GROUP (creates the group)
    Import {
        group: String,
        file: PathBuf,
        /// Model file format: native (a nimbus bundle) or xgboost-json (Python's save_model("m.json"))
        #[arg(long, default_value = "native")]
        format: String,
        #[arg(long)]
        description: Option<String>,
        /// xgboost-json: labels of a label-encoded feature in code order, e.g. Sex=male,female (repeatable)
        #[arg(long, value_name = "FEATURE=LABELS")]
        category: Vec<String>,
        /// xgboost-json: input names when the model has none, comma separated
        #[arg(long)]
        feature_names: Option<String>,
        /// xgboost-json: class labels, comma separated (default 0, 1, …)
        #[arg(long)]
        classes: Option<String>,
        /// xgboost-json: the target's name, for the schema
        #[arg(long)]
        target: Option<String>,
    },
    /// Write a version's model file: XGBoost JSON (loadable by Python xgboost) or the native bundle
    Export {
        /// GROUP/VERSION (or GROUP VERSION)
        target: String,
        version: Option<String>,
        /// xgboost-json or native
        #[arg(long, default_value = "xgboost-json")]
        format: String,
        /// Output file (default: stdout)
        #[arg(short, long)]
        output_file: Option<PathBuf>,
    },
    /// The group's audit trail: registrations, approvals, alias moves
    Events { group: String },
}

/// `--process-sandbox`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessSandbox {
    Auto,
    Landlock,
    SeparateUser,
}
