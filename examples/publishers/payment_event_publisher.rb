# frozen_string_literal: true

require "time"
require "tasker_events"

# The custom publisher of the domain events design, for the events of
# examples/templates/payments/credit_card_payment/1.0.0.yaml. Register it before
# TaskerEvents.start, which checks that every publisher a template names is registered:
#
#   TaskerEvents::PublisherRegistry.instance.register(
#     DomainEvents::Publishers::PaymentEventPublisher.new
#   )
#
# It runs on the drain thread, never on the step's thread, so the checks below cost the step
# nothing. It is written against TaskerCore::DomainEvents, the alias tasker-core code uses,
# to show that such code runs unchanged.
module DomainEvents
  module Publishers
    # Enriches payment events: a success carries the transaction, a failure an error code and
    # a reason, and both carry execution metrics in their metadata.
    class PaymentEventPublisher < TaskerCore::DomainEvents::BasePublisher
      # Templates may write this name in full or as PaymentEventPublisher.
      def name
        "DomainEvents::Publishers::PaymentEventPublisher"
      end

      # @return [Hash] the payload for payment.processed or payment.failed; any other event
      #   gets the step's result unchanged
      def transform_payload(step_result, event_declaration, step_context = nil)
        result = step_result[:result] || {}
        event_name = event_declaration[:name].to_s

        if step_result[:success] && event_name.include?("processed")
          build_success_payload(result, event_declaration)
        elsif !step_result[:success] && event_name.include?("failed")
          build_failure_payload(result, step_result, step_context)
        else
          result
        end
      end

      # A success event without a transaction id, or a failure event without an error code,
      # would tell a consumer nothing it could act on, so neither is published.
      def should_publish?(step_result, event_declaration, _step_context = nil)
        event_name = event_declaration[:name].to_s

        if event_name.include?("processed")
          result = step_result[:result] || {}
          return step_result[:success] == true && present?(result[:transaction_id])
        end
        if event_name.include?("failed")
          metadata = step_result[:metadata] || {}
          return step_result[:success] != true && present?(metadata[:error_code])
        end

        true
      end

      # Merged into the event's metadata; the standard fields (task_uuid, namespace, ...) win
      # over keys of the same name.
      def additional_metadata(step_result, _event_declaration, _step_context = nil)
        metadata = step_result[:metadata] || {}
        {
          execution_time_ms: metadata[:execution_time_ms],
          publisher_type: "custom",
          publisher_name: name,
          payment_provider: metadata[:payment_provider]
        }
      end

      private

      def build_success_payload(result, event_declaration)
        {
          transaction_id: result[:transaction_id],
          amount: result[:amount],
          currency: result[:currency] || "USD",
          payment_method: result[:payment_method] || "credit_card",
          processed_at: result[:processed_at] || Time.now.utc.iso8601,
          # The design hard-codes "durable" here; the template is the one source of truth.
          delivery_mode: event_declaration[:delivery_mode],
          publisher: name
        }
      end

      # The payment.failed schema requires error_code and reason as strings, so both are
      # always strings here, even when the handler reported neither a message nor an error.
      def build_failure_payload(result, step_result, step_context)
        metadata = step_result[:metadata] || {}
        {
          error_code: metadata[:error_code].to_s,
          reason: failure_reason(result, metadata),
          transaction_id: result[:transaction_id],
          attempt: step_context && step_context[:attempt],
          publisher: name
        }
      end

      def failure_reason(result, metadata)
        [metadata[:error_message], result[:error]].find { |text| present?(text) }&.to_s ||
          "no reason given"
      end

      # ActiveSupport's present? without ActiveSupport: nil, false, empty collections and
      # blank strings are absent.
      def present?(value)
        case value
        when nil, false then false
        when String then !value.strip.empty?
        else !value.respond_to?(:empty?) || !value.empty?
        end
      end
    end
  end
end
