// Validates a SAM template with the CloudFormation validation engine that
// ships inside aws-cdk-lib (CloudFormationValidatePlugin, the "CloudFormation
// Validate" check CDK runs at synth: resource schemas, intrinsic functions,
// references), offline. functions/template_test.go runs it:
//
//   node validate.cjs TEMPLATE
//
// prints every finding, one per line, and exits 1 if any is left after the
// one known false positive is dropped:
//
//   - GetAtt <F>Url.FunctionUrl, where <F> is an AWS::Serverless::Function
//     with FunctionUrlConfig: SAM generates the AWS::Lambda::Url resource
//     <F>Url when it transforms the template, so before the transform the
//     engine sees a GetAtt of a resource that does not exist yet. Dropped by
//     that exact name, nothing else.
//
// The engine has no schema for AWS::Serverless::* types (they exist only
// until the SAM transform turns them into Lambda, IAM, URL, event and
// invoke-config resources), so it checks their references but not their
// properties; every other resource (bucket, bucket policy, log groups) is
// checked in full. The script lists both kinds, so a type that silently
// lost its checks would show.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const cdk = require('aws-cdk-lib');
// CDK's own reader of CloudFormation YAML (short-form tags such as !Ref);
// not exported, so loaded by its path.
const { readYamlSync } = require(path.join(__dirname, 'node_modules/aws-cdk-lib/cloudformation-include/lib/file-utils.js'));

function main(file) {
  const template = readYamlSync(file);
  const resources = template.Resources || {};
  const urlFunctions = new Set(Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::Serverless::Function' && r.Properties && r.Properties.FunctionUrlConfig)
    .map(([id]) => id));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cfn-'));
  const json = path.join(dir, 'template.json');
  fs.writeFileSync(json, JSON.stringify(template));
  let report;
  try {
    report = new cdk.CloudFormationValidatePlugin().validate({
      templatePaths: [json],
      stackTemplates: [{ stackConstructPath: 'Cairn', templatePath: json }],
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const samURL = /^GetAtt '([A-Za-z0-9]+)Url\.FunctionUrl' references a resource that does not exist$/;
  let dropped = 0;
  const left = [];
  for (const v of report.violations) {
    for (const r of v.violatingResources) {
      const msg = v.description.replace(/^[^ ]+: /, ''); // "Outputs/X/Value...: " prefix
      const m = samURL.exec(msg);
      if (v.ruleName === 'F6101' && m && urlFunctions.has(m[1])) {
        dropped++;
        continue;
      }
      left.push(`${v.severity} ${v.ruleName} ${r.resourceLogicalId || (r.locations || []).join(',') || '-'}: ${v.description}`);
    }
  }

  const types = {};
  for (const r of Object.values(resources)) types[r.Type] = (types[r.Type] || 0) + 1;
  const sam = Object.keys(types).filter((t) => t.startsWith('AWS::Serverless::')).sort();
  const full = Object.keys(types).filter((t) => !t.startsWith('AWS::Serverless::')).sort();
  console.log(`checked in full: ${full.map((t) => `${t} x${types[t]}`).join(', ')}`);
  console.log(`references only (no schema before the SAM transform): ${sam.map((t) => `${t} x${types[t]}`).join(', ')}`);
  console.log(`dropped ${dropped} known false positive(s): GetAtt <Function>Url.FunctionUrl of a function with FunctionUrlConfig`);
  for (const l of left) console.log(l);
  console.log(left.length === 0 ? 'template valid' : `${left.length} finding(s)`);
  return left.length === 0 ? 0 : 1;
}

if (process.argv.length !== 3) {
  console.error('usage: node validate.cjs TEMPLATE');
  process.exit(2);
}
process.exitCode = main(process.argv[2]);
