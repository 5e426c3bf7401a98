//! The admin route table: every route's method, path, body rules, IAM action and resource
//! ARN, and handler. The router is built from this table ([`super::router`]); a test checks
//! it against the router and against `docs/openapi.json` (paths, actions and resources) in
//! both directions, so none of the three can drift.
//!
//! Resource templates name `{region}`, `{account}` and the route's path parameters; they are
//! filled from the request path (percent-decoded) before the policy check.

use axum::routing::{MethodRouter, delete, get, head, patch, post, put};

use super::{Body, access, buckets, function_versions, iam, models, pipelines, serving};
use crate::AppState;

/// One admin route.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// Relative to `/_nimbus/v1`, in axum's syntax (`{*key}` is the greedy object key).
    pub path: &'static str,
    pub body: Body,
    /// The IAM action a caller needs (`nimbus:ApproveModelVersion`, `s3:PutObject`, …).
    pub action: &'static str,
    /// The resource ARN template the action is checked on.
    pub resource: &'static str,
    /// The handler, as a method router for this route's method.
    pub handler: fn() -> MethodRouter<AppState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({} on {})", self.method, self.path, self.action, self.resource)
    }
}

const fn r(
    method: &'static str,
    path: &'static str,
    body: Body,
    action: &'static str,
    resource: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> Route {
    Route { method, path, body, action, resource, handler }
}

use Body::{Download, Json, ModelFile, Upload};

const S3: &str = "arn:aws:s3:::*";
const BUCKET: &str = "arn:aws:s3:::{bucket}";
const OBJECT: &str = "arn:aws:s3:::{bucket}/{key}";
const GROUPS: &str = "arn:aws:sagemaker:{region}:{account}:model-package-group/*";
const GROUP: &str = "arn:aws:sagemaker:{region}:{account}:model-package-group/{group}";
const VERSION: &str = "arn:aws:sagemaker:{region}:{account}:model-package/{group}/{version}";
const PIPELINES: &str = "arn:aws:sagemaker:{region}:{account}:pipeline/*";
const PIPELINE: &str = "arn:aws:sagemaker:{region}:{account}:pipeline/{pipeline}";
const EXECUTION: &str = "arn:aws:sagemaker:{region}:{account}:pipeline-execution/{execution}";
const FUNCTIONS: &str = "arn:aws:lambda:{region}:{account}:function:*";
const FUNCTION: &str = "arn:aws:lambda:{region}:{account}:function:{function}";
const APIS: &str = "arn:aws:apigateway:{region}::/apis";
const API: &str = "arn:aws:apigateway:{region}::/apis/{api}";
const USERS: &str = "arn:aws:iam::{account}:user/*";
const USER: &str = "arn:aws:iam::{account}:user/{user}";
const IAM_GROUPS: &str = "arn:aws:iam::{account}:group/*";
const IAM_GROUP: &str = "arn:aws:iam::{account}:group/{group}";
const ROLES: &str = "arn:aws:iam::{account}:role/*";
const ROLE: &str = "arn:aws:iam::{account}:role/{role}";
const POLICIES: &str = "arn:aws:iam::{account}:policy/*";
const POLICY: &str = "arn:aws:iam::{account}:policy/{policy}";
const API_KEYS: &str = "arn:aws:apigateway:{region}::/apikeys";
const API_KEY: &str = "arn:aws:apigateway:{region}::/apikeys/{api_key}";
const PLANS: &str = "arn:aws:apigateway:{region}::/usageplans";
const PLAN: &str = "arn:aws:apigateway:{region}::/usageplans/{plan}";
const POOL: &str = "arn:aws:cognito-idp:{region}:{account}:userpool/nimbus";
const STORE: &str = "arn:aws:s3:::*";

/// Every admin route. A test checks it against the router and `docs/openapi.json`.
pub const ROUTES: &[Route] = &[
    r("GET", "/whoami", Json, "sts:GetCallerIdentity", "*", || get(super::whoami)),
    // The store (S3's action names, so S3 policies apply verbatim).
    r("GET", "/buckets", Json, "s3:ListAllMyBuckets", S3, || get(buckets::list_buckets)),
    r("PUT", "/buckets/{bucket}", Json, "s3:CreateBucket", BUCKET, || put(buckets::create_bucket)),
    r("DELETE", "/buckets/{bucket}", Json, "s3:DeleteBucket", BUCKET, || delete(buckets::delete_bucket)),
    r("GET", "/buckets/{bucket}/objects", Json, "s3:ListBucket", BUCKET, || get(buckets::list_objects)),
    r("GET", "/buckets/{bucket}/objects/{*key}", Download, "s3:GetObject", OBJECT, || get(buckets::get_object)),
    r("HEAD", "/buckets/{bucket}/objects/{*key}", Download, "s3:GetObject", OBJECT, || head(buckets::head_object)),
    r("PUT", "/buckets/{bucket}/objects/{*key}", Upload, "s3:PutObject", OBJECT, || put(buckets::put_object)),
    r("DELETE", "/buckets/{bucket}/objects/{*key}", Json, "s3:DeleteObject", OBJECT, || delete(buckets::delete_object)),
    r("POST", "/store/fsck", Json, "nimbus:CheckStore", STORE, || post(buckets::fsck)),
    // The model registry.
    r("GET", "/model-groups", Json, "nimbus:ListModelGroups", GROUPS, || get(models::list_groups)),
    r("POST", "/model-groups", Json, "nimbus:CreateModelGroup", GROUPS, || post(models::create_group)),
    r("GET", "/model-groups/{group}", Json, "nimbus:DescribeModelGroup", GROUP, || get(models::describe_group)),
    r("GET", "/model-groups/{group}/versions", Json, "nimbus:ListModelVersions", GROUP, || get(models::list_versions)),
    r("POST", "/model-groups/{group}/versions", Json, "nimbus:RegisterModelVersion", GROUP, || {
        post(models::register_version)
    }),
    r("POST", "/model-groups/{group}/imports", ModelFile, "nimbus:RegisterModelVersion", GROUP, || {
        post(models::import_version)
    }),
    r("GET", "/model-groups/{group}/versions/{version}", Json, "nimbus:DescribeModelVersion", VERSION, || {
        get(models::describe_version)
    }),
    r("PATCH", "/model-groups/{group}/versions/{version}", Json, "nimbus:ApproveModelVersion", VERSION, || {
        patch(models::update_version)
    }),
    r("GET", "/model-groups/{group}/versions/{version}/export", Json, "nimbus:ExportModelVersion", VERSION, || {
        get(models::export_version)
    }),
    r("GET", "/model-groups/{group}/aliases", Json, "nimbus:ListModelAliases", GROUP, || get(models::list_aliases)),
    r("PUT", "/model-groups/{group}/aliases/{alias}", Json, "nimbus:SetModelAlias", GROUP, || put(models::set_alias)),
    r("DELETE", "/model-groups/{group}/aliases/{alias}", Json, "nimbus:DeleteModelAlias", GROUP, || {
        delete(models::delete_alias)
    }),
    r("GET", "/model-groups/{group}/resolve", Json, "nimbus:DescribeModelGroup", GROUP, || get(models::resolve)),
    r("GET", "/model-groups/{group}/events", Json, "nimbus:ListModelEvents", GROUP, || get(models::events)),
    // Pipelines.
    r("GET", "/pipelines", Json, "nimbus:ListPipelines", PIPELINES, || get(pipelines::list)),
    r("GET", "/pipelines/{pipeline}", Json, "nimbus:DescribePipeline", PIPELINE, || get(pipelines::describe)),
    r("PUT", "/pipelines/{pipeline}", Json, "nimbus:PutPipeline", PIPELINE, || put(pipelines::put)),
    r("GET", "/pipelines/{pipeline}/executions", Json, "nimbus:ListPipelineExecutions", PIPELINE, || {
        get(pipelines::executions)
    }),
    r("POST", "/pipelines/{pipeline}/executions", Json, "nimbus:RunPipeline", PIPELINE, || post(pipelines::start)),
    r("GET", "/executions/{execution}", Json, "nimbus:DescribePipelineExecution", EXECUTION, || {
        get(pipelines::execution)
    }),
    r("POST", "/executions/{execution}/retry", Json, "nimbus:RetryPipelineExecution", EXECUTION, || {
        post(pipelines::retry)
    }),
    r("POST", "/executions/{execution}/stop", Json, "nimbus:StopPipelineExecution", EXECUTION, || {
        post(pipelines::stop)
    }),
    // Functions and APIs.
    r("GET", "/functions", Json, "nimbus:ListFunctions", FUNCTIONS, || get(serving::list_functions)),
    r("GET", "/functions/{function}", Json, "nimbus:GetFunction", FUNCTION, || get(serving::describe_function)),
    r("PUT", "/functions/{function}", Json, "nimbus:PutFunction", FUNCTION, || put(serving::put_function)),
    r("DELETE", "/functions/{function}", Json, "nimbus:DeleteFunction", FUNCTION, || delete(serving::delete_function)),
    r("GET", "/functions/{function}/logs", Json, "nimbus:GetFunctionLogs", FUNCTION, || get(serving::function_logs)),
    r("GET", "/functions/{function}/failures", Json, "nimbus:ListFunctionEventFailures", FUNCTION, || {
        get(serving::function_failures)
    }),
    r("POST", "/functions/{function}/versions", Json, "nimbus:PublishVersion", FUNCTION, || {
        post(function_versions::publish)
    }),
    r("GET", "/functions/{function}/versions", Json, "nimbus:ListVersionsByFunction", FUNCTION, || {
        get(function_versions::list_versions)
    }),
    r("GET", "/functions/{function}/aliases", Json, "nimbus:ListAliases", FUNCTION, || {
        get(function_versions::list_aliases)
    }),
    r("PUT", "/functions/{function}/aliases/{alias}", Json, "nimbus:UpdateAlias", FUNCTION, || {
        put(function_versions::put_alias)
    }),
    r("DELETE", "/functions/{function}/aliases/{alias}", Json, "nimbus:DeleteAlias", FUNCTION, || {
        delete(function_versions::delete_alias)
    }),
    r("GET", "/apis", Json, "nimbus:ListApis", APIS, || get(serving::list_apis)),
    r("GET", "/apis/{api}", Json, "nimbus:GetApi", API, || get(serving::describe_api)),
    r("PUT", "/apis/{api}", Json, "nimbus:PutApi", API, || put(serving::put_api)),
    r("DELETE", "/apis/{api}", Json, "nimbus:DeleteApi", API, || delete(serving::delete_api)),
    r("GET", "/apis/{api}/logs", Json, "nimbus:GetApiLogs", API, || get(serving::api_logs)),
    // IAM (IAM's own action names).
    r("GET", "/iam/users", Json, "iam:ListUsers", USERS, || get(iam::list_users)),
    r("PUT", "/iam/users/{user}", Json, "iam:CreateUser", USER, || put(iam::create_user)),
    r("DELETE", "/iam/users/{user}", Json, "iam:DeleteUser", USER, || delete(iam::delete_user)),
    r("PUT", "/iam/users/{user}/tags", Json, "iam:TagUser", USER, || put(iam::tag_user)),
    r("GET", "/iam/users/{user}/access-keys", Json, "iam:ListAccessKeys", USER, || get(iam::list_access_keys)),
    r("POST", "/iam/users/{user}/access-keys", Json, "iam:CreateAccessKey", USER, || post(iam::create_access_key)),
    r("PATCH", "/iam/users/{user}/access-keys/{access_key}", Json, "iam:UpdateAccessKey", USER, || {
        patch(iam::update_access_key)
    }),
    r("DELETE", "/iam/users/{user}/access-keys/{access_key}", Json, "iam:DeleteAccessKey", USER, || {
        delete(iam::delete_access_key)
    }),
    r("POST", "/iam/users/{user}/access-keys/{access_key}/rotate", Json, "iam:CreateAccessKey", USER, || {
        post(iam::rotate_access_key)
    }),
    r("PUT", "/iam/users/{user}/attached-policies/{policy}", Json, "iam:AttachUserPolicy", USER, || {
        put(iam::attach_user_policy)
    }),
    r("DELETE", "/iam/users/{user}/attached-policies/{policy}", Json, "iam:DetachUserPolicy", USER, || {
        delete(iam::detach_user_policy)
    }),
    r("GET", "/iam/users/{user}/policies/{policy}", Json, "iam:GetUserPolicy", USER, || get(iam::get_user_policy)),
    r("PUT", "/iam/users/{user}/policies/{policy}", Json, "iam:PutUserPolicy", USER, || put(iam::put_user_policy)),
    r("DELETE", "/iam/users/{user}/policies/{policy}", Json, "iam:DeleteUserPolicy", USER, || {
        delete(iam::delete_user_policy)
    }),
    r("GET", "/iam/groups", Json, "iam:ListGroups", IAM_GROUPS, || get(iam::list_groups)),
    r("PUT", "/iam/groups/{group}", Json, "iam:CreateGroup", IAM_GROUP, || put(iam::create_group)),
    r("DELETE", "/iam/groups/{group}", Json, "iam:DeleteGroup", IAM_GROUP, || delete(iam::delete_group)),
    r("PUT", "/iam/groups/{group}/members/{user}", Json, "iam:AddUserToGroup", IAM_GROUP, || put(iam::add_member)),
    r("DELETE", "/iam/groups/{group}/members/{user}", Json, "iam:RemoveUserFromGroup", IAM_GROUP, || {
        delete(iam::remove_member)
    }),
    r("PUT", "/iam/groups/{group}/attached-policies/{policy}", Json, "iam:AttachGroupPolicy", IAM_GROUP, || {
        put(iam::attach_group_policy)
    }),
    r("DELETE", "/iam/groups/{group}/attached-policies/{policy}", Json, "iam:DetachGroupPolicy", IAM_GROUP, || {
        delete(iam::detach_group_policy)
    }),
    r("PUT", "/iam/groups/{group}/policies/{policy}", Json, "iam:PutGroupPolicy", IAM_GROUP, || {
        put(iam::put_group_policy)
    }),
    r("DELETE", "/iam/groups/{group}/policies/{policy}", Json, "iam:DeleteGroupPolicy", IAM_GROUP, || {
        delete(iam::delete_group_policy)
    }),
    r("GET", "/iam/roles", Json, "iam:ListRoles", ROLES, || get(iam::list_roles)),
    r("PUT", "/iam/roles/{role}", Json, "iam:CreateRole", ROLE, || put(iam::create_role)),
    r("DELETE", "/iam/roles/{role}", Json, "iam:DeleteRole", ROLE, || delete(iam::delete_role)),
    r("PUT", "/iam/roles/{role}/attached-policies/{policy}", Json, "iam:AttachRolePolicy", ROLE, || {
        put(iam::attach_role_policy)
    }),
    r("DELETE", "/iam/roles/{role}/attached-policies/{policy}", Json, "iam:DetachRolePolicy", ROLE, || {
        delete(iam::detach_role_policy)
    }),
    r("PUT", "/iam/roles/{role}/policies/{policy}", Json, "iam:PutRolePolicy", ROLE, || put(iam::put_role_policy)),
    r("DELETE", "/iam/roles/{role}/policies/{policy}", Json, "iam:DeleteRolePolicy", ROLE, || {
        delete(iam::delete_role_policy)
    }),
    r("GET", "/iam/policies", Json, "iam:ListPolicies", POLICIES, || get(iam::list_policies)),
    r("GET", "/iam/policies/{policy}", Json, "iam:GetPolicy", POLICY, || get(iam::get_policy)),
    r("PUT", "/iam/policies/{policy}", Json, "iam:CreatePolicy", POLICY, || put(iam::put_policy)),
    r("DELETE", "/iam/policies/{policy}", Json, "iam:DeletePolicy", POLICY, || delete(iam::delete_policy)),
    // API keys and usage plans (API Gateway's resource paths).
    r("GET", "/api-keys", Json, "apigateway:GET", API_KEYS, || get(access::list_api_keys)),
    r("POST", "/api-keys", Json, "apigateway:POST", API_KEYS, || post(access::create_api_key)),
    r("PATCH", "/api-keys/{api_key}", Json, "apigateway:PATCH", API_KEY, || patch(access::update_api_key)),
    r("DELETE", "/api-keys/{api_key}", Json, "apigateway:DELETE", API_KEY, || delete(access::delete_api_key)),
    r("GET", "/api-keys/{api_key}/usage", Json, "apigateway:GET", API_KEY, || get(access::api_key_usage)),
    r("GET", "/usage-plans", Json, "apigateway:GET", PLANS, || get(access::list_usage_plans)),
    r("PUT", "/usage-plans/{plan}", Json, "apigateway:PUT", PLAN, || put(access::put_usage_plan)),
    r("DELETE", "/usage-plans/{plan}", Json, "apigateway:DELETE", PLAN, || delete(access::delete_usage_plan)),
    // The OAuth2 authorization server (Cognito's action names, one user pool).
    r("GET", "/auth/resource-servers", Json, "cognito-idp:ListResourceServers", POOL, || {
        get(access::list_resource_servers)
    }),
    r("PUT", "/auth/resource-servers/{identifier}", Json, "cognito-idp:CreateResourceServer", POOL, || {
        put(access::put_resource_server)
    }),
    r("DELETE", "/auth/resource-servers/{identifier}", Json, "cognito-idp:DeleteResourceServer", POOL, || {
        delete(access::delete_resource_server)
    }),
    r("GET", "/auth/clients", Json, "cognito-idp:ListUserPoolClients", POOL, || get(access::list_clients)),
    r("PUT", "/auth/clients/{client}", Json, "cognito-idp:CreateUserPoolClient", POOL, || put(access::put_client)),
    r("DELETE", "/auth/clients/{client}", Json, "cognito-idp:DeleteUserPoolClient", POOL, || {
        delete(access::delete_client)
    }),
    r("POST", "/auth/clients/{client}/rotate-secret", Json, "cognito-idp:UpdateUserPoolClient", POOL, || {
        post(access::rotate_client_secret)
    }),
    r("POST", "/auth/signing-keys/rotate", Json, "cognito-idp:UpdateUserPool", POOL, || {
        post(access::rotate_signing_key)
    }),
];

/// The route a request matched (by its method and matched path under `/_nimbus/v1`).
pub fn route_of(method: &str, matched: &str) -> Option<&'static Route> {
    let rel = matched.strip_prefix("/_nimbus/v1").unwrap_or(matched);
    ROUTES.iter().find(|r| r.method == method && r.path == rel)
}

/// The resource ARN of a request on `route`: the template filled with the region, account
/// and the path parameters taken from `path` (relative to `/_nimbus/v1`, percent-decoded).
pub fn resource_of(route: &Route, path: &str, region: &str, account: &str) -> String {
    let mut out = route.resource.replace("{region}", region).replace("{account}", account);
    if !out.contains('{') {
        return out;
    }
    let mut actual = path.trim_start_matches('/').split('/');
    for segment in route.path.trim_start_matches('/').split('/') {
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            actual.next();
            continue;
        };
        let value = match name.strip_prefix('*') {
            // The greedy key: the rest of the path.
            Some(_) => actual.by_ref().collect::<Vec<_>>().join("/"),
            None => actual.next().unwrap_or_default().to_string(),
        };
        let value = percent_encoding::percent_decode_str(&value).decode_utf8_lossy().into_owned();
        out = out.replace(&format!("{{{}}}", name.trim_start_matches('*')), &value);
    }
    out
}
