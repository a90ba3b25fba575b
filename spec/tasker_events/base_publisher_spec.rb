# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::BasePublisher do
  subject(:publisher) { described_class.new }

  let(:step_result) do
    { success: true, retryable: false, result: { transaction_id: "TXN-1", amount: 10 },
      metadata: { execution_time_ms: 12 } }
  end
  let(:declaration) do
    { name: "payment.processed", description: nil, condition: "success",
      delivery_mode: "durable", publisher: nil, schema: nil }
  end
  let(:context) { { step_name: "process_payment", namespace: "payments", attempt: 1 } }

  it "is named after its class" do
    expect(publisher.name).to eq("TaskerEvents::BasePublisher")
    stub_const("Billing::InvoicePublisher", Class.new(described_class))
    expect(Billing::InvoicePublisher.new.name).to eq("Billing::InvoicePublisher")
  end

  it "publishes every event" do
    expect(publisher.should_publish?(step_result, declaration, context)).to be(true)
    expect(publisher.should_publish?({ success: false }, declaration, context)).to be(true)
  end

  it "uses the step's result as the payload" do
    expect(publisher.transform_payload(step_result, declaration, context))
      .to eq(transaction_id: "TXN-1", amount: 10)
  end

  it "uses an empty payload when the step has no result" do
    expect(publisher.transform_payload({ success: false }, declaration, context)).to eq({})
    expect(publisher.transform_payload({ success: true, result: nil }, declaration, context))
      .to eq({})
  end

  it "adds no metadata" do
    expect(publisher.additional_metadata(step_result, declaration, context)).to eq({})
  end

  it "does nothing before or after publishing, or on an error" do
    expect(publisher.before_publish(step_result, declaration, context)).to be_nil
    expect(publisher.after_publish(step_result, declaration, context)).to be_nil
    error = RuntimeError.new("boom")
    expect(publisher.on_publish_error(step_result, declaration, context, error)).to be_nil
  end

  # Publishers written for tasker-core call the hooks without a step context.
  it "accepts hook calls without a step context" do
    expect(publisher.should_publish?(step_result, declaration)).to be(true)
    expect(publisher.transform_payload(step_result, declaration)).to eq(step_result[:result])
    expect(publisher.additional_metadata(step_result, declaration)).to eq({})
    expect(publisher.before_publish(step_result, declaration)).to be_nil
    expect(publisher.after_publish(step_result, declaration)).to be_nil
  end

  it_behaves_like "a tasker_events publisher", TaskerEvents::BasePublisher.new

  it "is the base class tasker-core code names" do
    expect(TaskerCore::DomainEvents::BasePublisher).to be(described_class)
  end
end
