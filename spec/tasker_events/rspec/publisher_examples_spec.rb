# frozen_string_literal: true

require "spec_helper"
require_relative "../../../examples/publishers/payment_event_publisher"

RSpec.describe "the shared examples \"a tasker_events publisher\"" do
  name = TaskerEvents::RSpec::PublisherExamples::NAME

  describe "against the example publisher" do
    it_behaves_like name, DomainEvents::Publishers::PaymentEventPublisher.new

    # The events and outcomes of examples/templates/payments/credit_card_payment/1.0.0.yaml.
    it_behaves_like name, DomainEvents::Publishers::PaymentEventPublisher.new do
      let(:tasker_events_event_declarations) do
        [{ name: "payment.processed", condition: "success", delivery_mode: "broadcast",
           publisher: "PaymentEventPublisher" },
         { name: "payment.failed", condition: "permanent_failure", delivery_mode: "durable",
           publisher: "DomainEvents::Publishers::PaymentEventPublisher" }]
      end
      let(:tasker_events_step_results) do
        [{ success: true, result: { transaction_id: "TXN-1", amount: 99.99 },
           metadata: { execution_time_ms: 12, payment_provider: "stripe" } },
         { success: false, retryable: false, result: { transaction_id: "TXN-2" },
           metadata: { error_code: "card_declined", error_message: "declined" } },
         { success: false, result: {}, metadata: {} }]
      end
      let(:tasker_events_step_context) { { namespace: "payments", attempt: 3 } }
    end
  end

  describe "against broken publishers" do
    def publisher(&body)
      Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Publisher"
        class_eval(&body) if body
      end.new
    end

    it "all pass for a publisher that keeps the contract" do
      results = run_shared_examples(name, publisher)
      expect(results.size).to eq(7)
      expect(results.compact).to be_empty
    end

    it "fail for an object that is not a BasePublisher" do
      results = run_shared_examples(name, Object.new)
      expect(results["is a TaskerEvents::BasePublisher, as PublisherRegistry requires"])
        .to include("to be a kind of TaskerEvents::BasePublisher")
    end

    it "fail for a name that is empty or not a String" do
      results = run_shared_examples(name, publisher { def name = " " })
      expect(results["has a name that is a non-empty String"])
        .to include('expected " " to match /\S/')

      results = run_shared_examples(name, publisher { def name = :payments })
      expect(results["has a name that is a non-empty String"])
        .to include("expected :payments to be a kind of String")
    end

    it "fail for hooks that need the step context tasker-core does not pass" do
      strict = publisher do
        def transform_payload(step_result, _declaration, _context) = step_result
      end
      results = run_shared_examples(name, strict)
      expect(results["takes hook arguments with and without a step context"])
        .to include("#transform_payload cannot be called with 2 arguments",
                    "[:req, :step_result], [:req, :_declaration], [:req, :_context]")
    end

    it "fail for an on_publish_error that does not take the error" do
      deaf = publisher { def on_publish_error(_result, _declaration, _context) = nil }
      results = run_shared_examples(name, deaf)
      expect(results["takes hook arguments with and without a step context"])
        .to include("#on_publish_error cannot be called with 4 arguments")
    end

    it "fail for a should_publish? that answers with something other than true or false" do
      results = run_shared_examples(name, publisher { def should_publish?(*) = nil })
      expect(results["answers should_publish? with true or false"])
        .to start_with('should_publish? returned nil for event "sample.event_published" and ' \
                       "step result {:success=>true")
    end

    it "fail for a transform_payload that returns no Hash, naming the sample" do
      results = run_shared_examples(name, publisher { def transform_payload(*) = [1] })
      expect(results["returns from transform_payload a Hash that has a JSON form"])
        .to start_with('transform_payload returned [1] for event "sample.event_published"')
    end

    it "fail for a payload without a JSON form, saying where the value sits" do
      results = run_shared_examples(name, publisher { def transform_payload(*) = { r: 0.0 / 0 } })
      expect(results["returns from transform_payload a Hash that has a JSON form"])
        .to start_with("transform_payload returned a Hash without a JSON form " \
                       "(payload.r: NaN has no JSON form)")
    end

    it "fail for an additional_metadata that returns nil" do
      results = run_shared_examples(name, publisher { def additional_metadata(*) = nil })
      expect(results["returns from additional_metadata a Hash that has a JSON form"])
        .to start_with("additional_metadata returned nil for event")
    end

    it "fail for a hook that changes the step result it shares with the other events" do
      mutating = publisher do
        def transform_payload(step_result, *) = step_result[:result].merge!(seen: true)
      end
      results = run_shared_examples(name, mutating)
      expect(results["returns from transform_payload a Hash that has a JSON form"])
        .to include("can't modify frozen Hash")
    end

    it "fail for a before_publish, after_publish or on_publish_error that raises" do
      %i[before_publish after_publish on_publish_error].each do |hook|
        broken = publisher { define_method(hook) { |*| raise IOError, "#{hook} failed" } }
        results = run_shared_examples(name, broken)
        expect(results["runs before_publish, after_publish and on_publish_error without raising"])
          .to include("IOError", "#{hook} failed")
      end
    end
  end
end
