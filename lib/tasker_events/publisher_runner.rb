# frozen_string_literal: true

module TaskerEvents
  # Runs the publishers of one completed step's declared events, in declaration order, on the
  # drain thread. An event whose template names no publisher, or one that is not registered,
  # gets the default {BasePublisher} behaviour and `fired_by: "default"`.
  class PublisherRunner
    DEFAULT_FIRED_BY = "default"

    # @param registry [PublisherRegistry]
    def initialize(registry = PublisherRegistry.instance)
      @registry = registry
      @default = BasePublisher.new
    end

    # @param job [Native::PublishJob]
    def run(job)
      step_result = job.step_result
      context = job.context
      job.declarations.each_with_index do |declaration, index|
        publisher = declaration[:publisher] && @registry.get(declaration[:publisher])
        publish_one(job, index, publisher, [step_result, declaration, context])
      end
    end

    private

    def publish_one(job, index, publisher, args)
      hooks = publisher || @default
      return unless route(job, index, publisher, hooks, args)

      call_hook(job, hooks, args, "after the event was published") { hooks.after_publish(*args) }
    end

    # @return [Boolean] whether the event was handed to the router
    def route(job, index, publisher, hooks, args)
      call_hook(job, hooks, args, "event not published") do
        unless hooks.should_publish?(*args)
          job.record("publisher_skipped", 1)
          next false
        end

        payload = hooks.transform_payload(*args)
        metadata = hooks.additional_metadata(*args) || {}
        hooks.before_publish(*args)
        job.publish(index, payload, metadata, publisher ? publisher.name.to_s : DEFAULT_FIRED_BY)
        true
      end
    end

    # Runs publisher code; an exception is counted, logged and passed to on_publish_error.
    def call_hook(job, hooks, args, consequence)
      yield
    rescue *USER_CODE_ERRORS => e
      job.record("publisher_error", 1)
      report(hooks, args, e, consequence)
      false
    end

    def report(publisher, args, error, consequence)
      step_result, declaration, context = args
      TaskerEvents.logger.warn(
        "tasker_events: publisher #{publisher.name} raised #{error.class}: #{error.message}; " \
        "#{consequence} event_name=#{declaration[:name]} namespace=#{context[:namespace]} " \
        "step_name=#{context[:step_name]} correlation_id=#{context[:correlation_id]}"
      )
      publisher.on_publish_error(step_result, declaration, context, error)
    rescue *USER_CODE_ERRORS => e
      TaskerEvents.logger.warn("tasker_events: #{publisher.name}#on_publish_error raised " \
                               "#{e.class}")
    end
  end
end
