# frozen_string_literal: true

require "spec_helper"
require "pathname"

RSpec.describe TaskerEvents::TaskTemplate do
  describe ".load of the example template" do
    subject(:template) { described_class.load(DeclaredEventHelpers::EXAMPLE_TEMPLATE) }

    it "reads the task's identity" do
      expect(template.name).to eq("credit_card_payment")
      expect(template.namespace).to eq("payments")
      expect(template.version).to eq("1.0.0")
      expect(template.description)
        .to eq("Process credit card payments with validation and fraud detection")
      expect(template.source).to eq(DeclaredEventHelpers::EXAMPLE_TEMPLATE)
      expect(template.domain_events).to eq([])
    end

    it "reads each step's retry policy, ignoring the orchestrator's keys" do
      expect(template.steps.map { |step| step.except(:publishes_events) }).to eq(
        [{ name: "validate_payment", retry: { retryable: false, limit: nil } },
         { name: "process_payment", retry: { retryable: true, limit: 3 } }]
      )
    end

    it "reads the declarations in order, with their schemas" do
      declarations = template.step("process_payment")
      expect(declarations.map { |d| d[:name] })
        .to eq(%w[payment.processed payment.failed payment.retry_scheduled])
      expect(declarations[0]).to eq(
        name: "payment.processed", description: "Payment successfully processed",
        condition: "success", delivery_mode: "broadcast", publisher: "PaymentEventPublisher",
        schema: { type: "object", required: %w[transaction_id amount],
                  properties: { transaction_id: { type: "string" }, amount: { type: "number" } } }
      )
      expect(declarations[1]).to include(
        condition: "permanent_failure", delivery_mode: "durable",
        publisher: "DomainEvents::Publishers::PaymentEventPublisher"
      )
      expect(declarations[1][:schema][:required]).to eq(%w[error_code reason])
      expect(declarations[2]).to include(condition: "retryable_failure", delivery_mode: "fast",
                                         publisher: nil, schema: nil)
    end

    it "finds steps by String or Symbol, and nil for an unknown step" do
      expect(template.step(:process_payment)).to eq(template.step("process_payment"))
      expect(template.step("validate_payment")).to eq([])
      expect(template.step("refund_payment")).to be_nil
    end

    it "lists every publisher it names, once each, in order" do
      expect(template.publisher_names)
        .to eq(%w[PaymentEventPublisher DomainEvents::Publishers::PaymentEventPublisher])
    end

    it "is frozen" do
      expect(template).to be_frozen
    end
  end

  describe ".load" do
    it "applies the documented defaults to a bare declaration" do
      path = write_declared_template(<<~YAML)
        name: refund_flow
        namespace_name: refunds
        version: 2.1
        domain_events:
          - name: refund.audited
            publisher: AuditPublisher
        steps:
          - name: issue_refund
            publishes_events:
              - name: refund.issued
      YAML
      template = described_class.load(path)
      expect(template.version).to eq("2.1")
      expect(template.steps[0][:retry]).to eq(retryable: true, limit: nil)
      expect(template.step("issue_refund")).to eq(
        [{ name: "refund.issued", description: nil, condition: "success",
           delivery_mode: "durable", publisher: nil, schema: nil }]
      )
      expect(template.domain_events.map { |d| d[:name] }).to eq(["refund.audited"])
      expect(template.publisher_names).to eq(["AuditPublisher"])
    end

    it "lists a publisher named by several events once" do
      path = write_declared_template(<<~YAML)
        name: refund_flow
        namespace_name: refunds
        version: 1.0.0
        domain_events:
          - { name: refund.audited, publisher: AuditPublisher }
        steps:
          - name: issue_refund
            publishes_events:
              - { name: refund.issued, publisher: RefundPublisher }
              - { name: refund.recorded, publisher: AuditPublisher }
      YAML
      expect(described_class.load(path).publisher_names).to eq(%w[RefundPublisher AuditPublisher])
    end

    it "accepts a Pathname" do
      path = Pathname.new(DeclaredEventHelpers::EXAMPLE_TEMPLATE)
      expect(described_class.load(path).name).to eq("credit_card_payment")
    end
  end

  describe "malformed templates" do
    # Line numbers below refer to this text.
    let(:valid) do
      <<~YAML
        name: refund_flow
        namespace_name: refunds
        version: 1.0.0
        steps:
          - name: issue_refund
            retry:
              retryable: true
              limit: 3
            publishes_events:
              - name: refund.issued
                condition: success
                delivery_mode: broadcast
                schema:
                  type: object
                  required: [refund_id]
              - name: refund.failed
                condition: permanent_failure
                delivery_mode: durable
      YAML
    end

    # Loads `valid` with `from` replaced by `to` and returns the TemplateError's message,
    # with the file's path replaced by FILE.
    def error_for(from, to)
      text = valid.sub(from, to)
      raise ArgumentError, "#{from.inspect} is not in the template" if text == valid

      path = write_declared_template(text)
      message = nil
      expect { described_class.load(path) }
        .to raise_error(TaskerEvents::TemplateError) { |error| message = error.message }
      expect(message).to start_with(path)
      message.sub(path, "FILE")
    end

    it "loads without the changes below" do
      template = described_class.load(write_declared_template(valid))
      expect(template.step("issue_refund").size).to eq(2)
    end

    it "names the line of a YAML syntax error" do
      message = error_for("  - name: issue_refund\n", "  - name: issue_refund\n   stray: 1\n")
      expect(message).to start_with("FILE:6: invalid YAML: did not find expected '-' indicator")
    end

    it "names the step, event and problem of a schema that is not valid JSON Schema" do
      expect(error_for("type: object", "type: objekt")).to start_with(
        'FILE:10: step "issue_refund", event "refund.issued": invalid schema: at /type: "objekt"'
      )
    end

    it "names an event name that breaks the naming rules" do
      expect(error_for("name: refund.failed", "name: Refund.Failed")).to eq(
        'FILE:16: step "issue_refund", event "Refund.Failed": invalid event name ' \
        '"Refund.Failed": expected lowercase a-z0-9_ segments joined by single dots, with at ' \
        'least one dot and at most 255 characters (e.g. "payment.processed")'
      )
    end

    it "names a namespace that cannot form a queue name" do
      expect(error_for("namespace_name: refunds", "namespace_name: Refunds-EU")).to eq(
        'FILE:2: invalid namespace "Refunds-EU": expected 1 to 33 characters of a-z, 0-9 and _'
      )
      expect(error_for("namespace_name: refunds", "namespace_name: #{"r" * 34}"))
        .to start_with("FILE:2: invalid namespace \"#{"r" * 34}\"")
    end

    it "names an unknown condition and lists the valid ones" do
      expect(error_for("condition: permanent_failure", "condition: sometimes")).to eq(
        'FILE:16: step "issue_refund", event "refund.failed": invalid condition "sometimes" ' \
        "(expected one of success, failure, retryable_failure, permanent_failure, always)"
      )
    end

    it "names an unknown delivery mode" do
      expect(error_for("delivery_mode: broadcast", "delivery_mode: eventually")).to eq(
        'FILE:10: step "issue_refund", event "refund.issued": invalid delivery mode ' \
        '"eventually": expected durable, fast or broadcast'
      )
    end

    it "names a value of the wrong type and what it should be" do
      cases = {
        ["condition: permanent_failure", "condition: 5"] =>
          'FILE:16: step "issue_refund", event "refund.failed": "condition" must be a string, ' \
          "got a number (5)",
        ["delivery_mode: durable", "delivery_mode: durable\n        publisher: 7"] =>
          'FILE:16: step "issue_refund", event "refund.failed": "publisher" must be a ' \
          "non-empty string, got a number (7)",
        [/schema:\n.*refund_id\]\n/m, "schema: object\n"] =>
          'FILE:10: step "issue_refund", event "refund.issued": "schema" must be a mapping or ' \
          'a boolean, got a string ("object")',
        ["limit: 3", "limit: -1"] =>
          'FILE:5: step "issue_refund": "retry.limit" must be an integer from 0 to 4294967295, ' \
          "got a number (-1)",
        ["retryable: true", "retryable: sometimes"] =>
          'FILE:5: step "issue_refund": "retry.retryable" must be a boolean, ' \
          'got a string ("sometimes")',
        ["version: 1.0.0", "version: [1]"] =>
          'FILE:3: "version" must be a non-empty string or a number, got a list'
      }
      cases.each { |(from, to), expected| expect(error_for(from, to)).to eq(expected) }
    end

    it "names a list that is not a list" do
      expect(error_for(/    publishes_events:.*\z/m, "    publishes_events: refund.issued\n"))
        .to eq('FILE:5: step "issue_refund": "publishes_events" must be a list, ' \
               'got a string ("refund.issued")')
      expect(error_for("    retry:\n      retryable: true\n      limit: 3\n", "    retry: 3\n"))
        .to eq('FILE:5: step "issue_refund": "retry" must be a mapping, got a number (3)')
    end

    it "names an event declared twice in one step, with both lines" do
      expect(error_for("name: refund.failed", "name: refund.issued")).to eq(
        'FILE:16: step "issue_refund", event "refund.issued": duplicate event name ' \
        "(first declared at line 10)"
      )
    end

    it "names a step declared twice" do
      expect(error_for(/\z/, "  - name: issue_refund\n"))
        .to eq('FILE:19: step "issue_refund": duplicate step name (first declared at line 5)')
    end

    it "names a missing required key" do
      expect(error_for("      - name: refund.failed\n        condition", "      - condition"))
        .to eq('FILE: step "issue_refund": publishes_events entry #2: missing required key "name"')
      expect(error_for(/^steps:.*\z/m, "")).to eq('FILE: missing required key "steps"')
    end

    it "names a document that is not a mapping" do
      path = write_declared_template("- refund.issued\n")
      expect { described_class.load(path) }.to raise_error(
        TaskerEvents::TemplateError, "#{path}: expected a mapping of template keys, got a list"
      )
    end

    it "names a file that cannot be read" do
      path = File.join(declared_tmp_dir, "missing.yaml")
      expect { described_class.load(path) }.to raise_error(
        TaskerEvents::TemplateError, /\A#{Regexp.escape(path)}: cannot read template: /
      )
    end

    it "is a TaskerEvents::Error" do
      expect(TaskerEvents::TemplateError.ancestors).to include(TaskerEvents::Error)
    end
  end
end
