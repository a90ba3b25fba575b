# frozen_string_literal: true

require "spec_helper"

# An event declared `fast` stays in the process: nothing a step result, a publisher or its
# metadata says can send it to PGMQ, where external consumers would read it.
RSpec.describe "events declared fast", :tasker_events_test_mode do
  let(:namespace) { unique_namespace("integrity") }

  # A publisher that tries every way it has to change where the event goes.
  let(:publisher) do
    Class.new(TaskerEvents::BasePublisher) do
      def name = "Spec::RedirectingPublisher"

      def transform_payload(*) = { delivery_mode: "durable", secret: "internal only" }

      def additional_metadata(*) = { delivery_mode: "durable", namespace: "elsewhere" }
    end.new
  end

  before do
    TaskerEvents::PublisherRegistry.instance.register(publisher)
    events = [{ "name" => "internal.noted", "condition" => "always", "delivery_mode" => "fast" },
              { "name" => "internal.published", "condition" => "always", "delivery_mode" => "fast",
                "publisher" => publisher.name }]
    TaskerEvents.shutdown
    TaskerEvents.start(test_mode: true, templates: [write_step_template(namespace, events)])
  end

  after { TaskerEvents::PublisherRegistry.instance.unregister(publisher.name) }

  it "never reaches PGMQ, whatever the step result and the publisher say" do
    subscriber = recording_subscriber("internal.*")
    step_result = { success: true, result: { delivery_mode: "durable" },
                    metadata: { delivery_mode: "broadcast" } }
    dispatch_and_flush(declared_step_context(namespace), step_result)

    expect(captured_domain_messages).to be_empty
    expect(subscriber.received.map { |e| [e[:event_name], e[:delivery_mode]] })
      .to contain_exactly(%w[internal.noted fast], %w[internal.published fast])
    published = subscriber.received.find { |e| e[:event_name] == "internal.published" }
    expect(published[:metadata][:namespace]).to eq(namespace)
  end
end
