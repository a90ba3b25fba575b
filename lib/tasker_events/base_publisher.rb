# frozen_string_literal: true

module TaskerEvents
  # Base class of custom publishers: code that decides, for a completed step, whether a
  # declared event is published and with which payload and metadata. A task template names a
  # publisher with `publisher:`; register it with {PublisherRegistry#register}.
  #
  # Publishers run on the drain thread, never on the step's thread, in this order:
  # {#should_publish?}, {#transform_payload}, {#additional_metadata}, {#before_publish}, then
  # the event is checked against its schema and routed, then {#after_publish}. An exception in
  # any of them goes to {#on_publish_error}, is logged and counted (`publisher_error`); raised
  # before routing, it means the event is not published. Each hook receives symbol-keyed
  # Hashes: the step result (`success`, `retryable`, `result`, `metadata`), the event
  # declaration (`name`, `description`, `condition`, `delivery_mode`, `publisher`, `schema`)
  # and the step context.
  #
  # @example
  #   class PaymentEventPublisher < TaskerEvents::BasePublisher
  #     def name = "DomainEvents::Publishers::PaymentEventPublisher"
  #
  #     def transform_payload(step_result, _event_declaration, _step_context = nil)
  #       { transaction_id: step_result[:result][:transaction_id] }
  #     end
  #   end
  class BasePublisher
    # @return [String] the name templates use in `publisher:`; defaults to the class name
    def name
      self.class.name
    end

    # @return [Boolean] false skips the event (counted as `publisher_skipped`)
    def should_publish?(_step_result, _event_declaration, _step_context = nil)
      true
    end

    # @return [Hash] the event's payload; by default the step's `result`
    def transform_payload(step_result, _event_declaration, _step_context = nil)
      step_result[:result] || {}
    end

    # @return [Hash] merged into the event's metadata (the standard fields win)
    def additional_metadata(_step_result, _event_declaration, _step_context = nil)
      {}
    end

    # Called after {#additional_metadata}, just before the event is checked and routed.
    def before_publish(_step_result, _event_declaration, _step_context = nil); end

    # Called after the event was routed (or rejected by its schema).
    def after_publish(_step_result, _event_declaration, _step_context = nil); end

    # Called when any hook raised; unless that was {#after_publish}, the event was not
    # published.
    # @param error [StandardError, ScriptError]
    def on_publish_error(_step_result, _event_declaration, _step_context, _error); end
  end
end
