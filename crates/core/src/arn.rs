//! Amazon Resource Names in the AWS forms, so policies written for AWS apply verbatim.

/// The region and account that every ARN of this deployment carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// AWS-style region name, `us-east-1` by default.
    pub region: String,
    /// Twelve-digit account id, `000000000000` by default.
    pub account: String,
}

impl Default for Partition {
    fn default() -> Self {
        Partition { region: "us-east-1".into(), account: "000000000000".into() }
    }
}

impl Partition {
    /// `arn:aws:iam::{account}:user/{name}`
    pub fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account)
    }

    /// `arn:aws:sagemaker:{region}:{account}:model-package-group/{name}`
    pub fn model_group_arn(&self, name: &str) -> String {
        format!("arn:aws:sagemaker:{}:{}:model-package-group/{name}", self.region, self.account)
    }

    /// `arn:aws:sagemaker:{region}:{account}:model-package/{group}/{version}`
    pub fn model_version_arn(&self, group: &str, version: i64) -> String {
        format!("arn:aws:sagemaker:{}:{}:model-package/{group}/{version}", self.region, self.account)
    }

    /// `arn:aws:s3:::{bucket}/{key}`
    pub fn object_arn(bucket: &str, key: &str) -> String {
        format!("arn:aws:s3:::{bucket}/{key}")
    }
}
