# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::StepContext do
  let(:required) do
    { step_name: "process_payment", namespace: "payments", task_name: "credit_card_payment",
      task_version: "1.0.0" }
  end

  it "keeps every field and lists them in to_h" do
    task_uuid = SecureRandom.uuid
    step_uuid = SecureRandom.uuid
    correlation_id = SecureRandom.uuid
    context = described_class.new(**required, task_uuid:, step_uuid:, correlation_id:,
                                              attempt: 2)

    expect(context.to_h).to eq(
      step_name: "process_payment", namespace: "payments", task_name: "credit_card_payment",
      task_version: "1.0.0", task_uuid:, step_uuid:, correlation_id:, attempt: 2
    )
    expect(context.step_uuid).to eq(step_uuid)
    expect(context.attempt).to eq(2)
  end

  it "leaves the optional fields nil" do
    context = described_class.new(**required)
    expect(context.to_h.values_at(:task_uuid, :step_uuid, :correlation_id, :attempt))
      .to eq([nil, nil, nil, nil])
  end

  it "turns symbols and other identifiers into strings" do
    uuid = Struct.new(:value) { def to_s = value }.new("0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
    context = described_class.new(step_name: :process_payment, namespace: :payments,
                                  task_name: :credit_card_payment, task_version: :"1.0.0",
                                  task_uuid: uuid)
    expect(context.namespace).to eq("payments")
    expect(context.task_version).to eq("1.0.0")
    expect(context.task_uuid).to eq("0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
  end

  it "is frozen" do
    context = described_class.new(**required)
    expect(context).to be_frozen
    expect { context.instance_variable_set(:@namespace, "other") }.to raise_error(FrozenError)
  end

  it "requires the four keys that identify the step in its template" do
    %i[step_name namespace task_name task_version].each do |key|
      expect { described_class.new(**required.except(key)) }
        .to raise_error(ArgumentError, /missing keyword: :#{key}/)
    end
  end

  it "refuses an empty or non-text required value, naming it" do
    [["", '""'], [nil, "nil"], [42, "42"]].each do |value, shown|
      expect { described_class.new(**required, namespace: value) }
        .to raise_error(TaskerEvents::ValidationError,
                        "StepContext namespace must be a non-empty String, got #{shown}")
    end
  end

  it "accepts only a positive Integer attempt" do
    expect(described_class.new(**required, attempt: 1).attempt).to eq(1)
    [0, -1, 1.0, "1"].each do |attempt|
      expect { described_class.new(**required, attempt:) }
        .to raise_error(TaskerEvents::ValidationError,
                        "StepContext attempt must be a positive Integer, got #{attempt.inspect}")
    end
  end

  it "refuses unknown keys" do
    expect { described_class.new(**required, task_id: "x") }
      .to raise_error(ArgumentError, /unknown keyword: :task_id/)
  end
end
