"""SearchDomain: the OpenSearch domain behind search and Grafana.

Fine-grained access control with an IAM master user (the OpenSearchSetup function's
role). The resource-based policy is set on the L1 and names only CALI's own roles; the
L2's ``access_policies`` and default log resource policy would each add a
custom-resource Lambda for something CloudFormation can express directly.
"""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from stacks._nag import acknowledge
from stacks.config import OpenSearchConfig

# Every REST verb on the domain, and nothing else (no es:* configuration changes).
HTTP_ACTIONS = (
    "es:ESHttpGet",
    "es:ESHttpHead",
    "es:ESHttpPost",
    "es:ESHttpPut",
    "es:ESHttpDelete",
    "es:ESHttpPatch",
)


class SearchDomain(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: OpenSearchConfig,
        domain_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.domain_name = domain_name
        # The domain's ARN is needed inside its own access policy; it is derived from the
        # fixed name because a GetAtt of the domain there would be a circular reference.
        self.domain_arn = f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{domain_name}"
        # How cdk-nag spells the wildcard of this domain's paths in IAM5 findings.
        self.nag_paths = f"arn:<AWS::Partition>:es:<AWS::Region>:<AWS::AccountId>:domain/{domain_name}/*"
        self.admin_role = iam.Role(
            self,
            "AdminRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="FGAC master user: applies index templates, ISM policy and role mappings",
        )

        log_groups = {
            kind: logs.LogGroup(
                self, f"{kind}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
            )
            for kind in ("SlowSearch", "SlowIndex", "App", "Audit")
        }
        log_policy = logs.ResourcePolicy(
            self,
            "LogsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[group.log_group_arn for group in log_groups.values()],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": self.domain_arn},
                    },
                )
            ],
        )

        masters = config.dedicated_master_count
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=domain_name,
            version=opensearch.EngineVersion.open_search(config.engine_version.removeprefix("OpenSearch_")),
            capacity=opensearch.CapacityConfig(
                data_nodes=config.data_nodes,
                data_node_instance_type=config.data_node_type,
                master_nodes=masters or None,
                master_node_instance_type=config.dedicated_master_type,
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(volume_size=config.volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3),
            zone_awareness=opensearch.ZoneAwarenessConfig(
                enabled=config.availability_zones > 1,
                availability_zone_count=config.availability_zones if config.availability_zones > 1 else None,
            ),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=self.admin_role.role_arn
            ),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                app_log_enabled=True,
                app_log_group=log_groups["App"],
                audit_log_enabled=True,
                audit_log_group=log_groups["Audit"],
            ),
            suppress_logs_resource_policy=True,
            enable_auto_software_update=True,
            removal_policy=removal_policy,
        )
        self.domain.node.add_dependency(log_policy)
        self._principals: list[str] = [self.admin_role.role_arn]
        self.endpoint = self.domain.domain_endpoint

        acknowledge(
            self.domain,
            "OS1",
            "Public endpoint on purpose: Firehose, the Lambdas and Managed Grafana reach it "
            "without a VPC and NAT gateways; access is limited by the resource policy to "
            "CALI's IAM roles, then by fine-grained access control.",
        )
        acknowledge(
            self.domain,
            "OS3",
            "Access is restricted by IAM principals (SigV4) in the resource policy, not by "
            "source IP: the callers are AWS services without fixed addresses.",
        )
        if masters == 0:
            acknowledge(
                self.domain,
                "OS4",
                "This environment's config runs without dedicated master nodes to save cost; "
                "prod sets dedicated_master_count.",
            )
        if config.availability_zones == 1:
            acknowledge(
                self.domain,
                "OS7",
                "This environment's config runs a single-AZ domain to save cost; prod sets "
                "availability_zones to 2 or 3.",
            )

    def allow(self, *roles: iam.IRole | str) -> None:
        """Let ``roles`` (or role ARNs) send signed requests; FGAC then decides what they may do."""
        self._principals.extend(role if isinstance(role, str) else role.role_arn for role in roles)

    def finalize_access_policy(self) -> None:
        cfn = self.domain.node.default_child
        assert isinstance(cfn, opensearch.CfnDomain)
        cfn.access_policies = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": list(self._principals)},
                    "Action": list(HTTP_ACTIONS),
                    "Resource": f"{self.domain_arn}/*",
                }
            ],
        }
