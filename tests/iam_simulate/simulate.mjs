// Decides IAM requests with @cloud-copilot/iam-simulate, an evaluator independent of
// infra/local/authz/policy.py (tests/infra/test_iam_differential.py compares the two).
//
// stdin: JSON Lines, one case a line:
//   {"id", "principal", "action", "resource", "resourceAccount",
//    "context": {key: string | [string]}, "identityPolicies": [{"name", "policy"}],
//    "resourcePolicy": policy document | null}
// stdout: one JSON line per case, in input order:
//   {"id", "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//    "explain": {...} (which statements decided), "ignoredContextKeys": [...], "error": ...}
// No service control or resource control policies apply (a standalone account).

import { createInterface } from 'node:readline'
import { runSimulation } from '@cloud-copilot/iam-simulate'

function statements(analysis) {
  return (analysis ?? []).map((s) => `${s.policyId ?? 'policy'}#${s.explain?.identifier ?? '?'}`)
}

function explain(analysis) {
  return {
    identityAllow: statements(analysis.identityAnalysis?.allowStatements),
    identityDeny: statements(analysis.identityAnalysis?.denyStatements),
    resourceResult: analysis.resourceAnalysis?.result,
    resourceAllow: statements(analysis.resourceAnalysis?.allowStatements),
    resourceDeny: statements(analysis.resourceAnalysis?.denyStatements),
    blockedBy: analysis.blockedBy ?? []
  }
}

async function decide(testCase) {
  const simulation = {
    request: {
      principal: testCase.principal,
      action: testCase.action,
      resource: { resource: testCase.resource, accountId: testCase.resourceAccount },
      contextVariables: testCase.context ?? {}
    },
    identityPolicies: testCase.identityPolicies ?? [],
    serviceControlPolicies: [],
    resourceControlPolicies: []
  }
  if (testCase.resourcePolicy) {
    simulation.resourcePolicy = testCase.resourcePolicy
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { id: testCase.id, result: 'Error', error: response.errors }
  }
  if (response.resultType !== 'single') {
    return {
      id: testCase.id,
      result: 'Error',
      error: { message: `expected one simulation, got ${response.resultType}` }
    }
  }
  return {
    id: testCase.id,
    result: response.overallResult,
    explain: explain(response.result.analysis),
    ignoredContextKeys: response.result.ignoredContextKeys ?? []
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) {
    continue
  }
  const testCase = JSON.parse(line)
  let result
  try {
    result = await decide(testCase)
  } catch (error) {
    result = { id: testCase.id, result: 'Error', error: { message: String(error?.stack ?? error) } }
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}
